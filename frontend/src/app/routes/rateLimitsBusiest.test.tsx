import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom does not have; the chart's title is what these tests read.
vi.mock("../../components/ui/Chart", () => ({
  Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure>,
}));

import RateLimitsPage from "./RateLimitsPage";

// The busiest client as the API names it since 300e72a: by what it attempted in a minute (admitted and refused),
// each signed-in user as `user:<id>`, the scopes with the most 429s first.

function serve(results: unknown[]) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async () => new Response(JSON.stringify({ results }), { status: 200, headers: { "Content-Type": "application/json" } })),
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

type Usage = Record<string, unknown>;

const policy = (scope: string, usage: Usage = {}) => ({
  id: 1, scope, description: "", enabled: true, requests: 100, effective_requests: 100, period_seconds: 60,
  burst_per_second: null, fail_open: true, priority: 1, adaptive: false, current_factor: 1, signal_read_at: null,
  usage: {
    requests: 579, refused: 381, minutes: [["2026-11-27T12:00:00Z", 579, 381]],
    busiest_client: "demo-clinical-app", busiest_client_minute: "2026-11-27T12:00:00Z",
    busiest_client_per_minute: 99, busiest_client_attempted: 480, busiest_client_refused: 381,
    busiest_client_limit_per_minute: 100, busiest_client_share: 0.99, exempt_clients: [], exempt_requests: 0,
    ...usage,
  },
  adjustments: [],
});

async function busiestLine(): Promise<string> {
  return (await screen.findByTestId("busiest-client")).textContent ?? "";
}

function rowOf(scope: string): HTMLElement {
  return screen.getByRole("button", { name: scope }).closest("tr") as HTMLElement;
}

describe("RateLimitsPage busiest client", () => {
  it("says what the busiest client attempted and how much of it was refused, against the limit", async () => {
    serve([policy("patient_data")]);
    render(<RateLimitsPage />);
    // The old page: "demo-clinical-app, 99 of 100/min at … (99%)": the 381 refusals nowhere.
    expect(await busiestLine()).toMatch(/^Busiest client: demo-clinical-app: 480 attempted, 381 refused \(limit 100\/min\) in the minute at .+$/);
    // The table reads what it attempted against the limit, not the admitted share (99%, as one just at its limit).
    expect(within(rowOf("patient_data")).getByText("480%")).toBeTruthy();
  });

  it("says a signed-in user as user #<id>, and the labels standing for many callers as such", async () => {
    serve([policy("patient_data", { busiest_client: "user:7" })]);
    render(<RateLimitsPage />);
    expect(await busiestLine()).toMatch(/^Busiest client: user #7: 480 attempted, 381 refused \(limit 100\/min\)/);
    expect(document.body.textContent).not.toContain("user:7");
    cleanup();

    serve([policy("patient_data", { busiest_client: "anonymous" })]);
    render(<RateLimitsPage />);
    expect(await busiestLine()).toMatch(/^Busiest client: anonymous \(callers not signed in, together\): 480 attempted/);
    cleanup();

    serve([policy("patient_data", { busiest_client: "session" })]);
    render(<RateLimitsPage />);
    expect(await busiestLine()).toMatch(/^Busiest client: session \(all signed-in users together\): 480 attempted/);
    cleanup();

    serve([policy("patient_data", { busiest_client: "unrecognised client" })]);
    render(<RateLimitsPage />);
    expect(await busiestLine()).toMatch(/^Busiest client: unrecognised client: 480 attempted, 381 refused/);
  });

  it("keeps the server's order of scopes (the most 429s first), and charts the first", async () => {
    serve([
      policy("patient_data", { refused: 9 }),
      policy("audit_logs", { refused: 4 }),
      policy("auth", { requests: 0, refused: 0, minutes: [] }),
      policy("inference", { refused: 0 }),
    ]);
    render(<RateLimitsPage />);
    const table = await screen.findByTestId("limits-table");
    const scopes = within(table).getAllByRole("rowheader").map((cell) => cell.textContent);
    expect(scopes).toEqual(["patient_data", "audit_logs", "auth", "inference"]);
    expect(screen.getByTestId("chart").textContent).toContain("patient_data");
  });

  it("reads an older server's answer (no attempted, no refused) without a crash or an undefined", async () => {
    const older = policy("patient_data", { busiest_client: "ehr-gateway", busiest_client_per_minute: 40, busiest_client_share: 0.4 });
    delete (older.usage as Usage).busiest_client_attempted;
    delete (older.usage as Usage).busiest_client_refused;
    serve([older]);
    render(<RateLimitsPage />);
    // Only the admitted are known: said as such, never as what it attempted.
    expect(await busiestLine()).toMatch(/^Busiest client: ehr-gateway: 40 admitted \(limit 100\/min\) in the minute at .+$/);
    expect(within(rowOf("patient_data")).getByText("40%")).toBeTruthy();
    expect(document.body.textContent).not.toMatch(/undefined|NaN|null/);
  });

  it("reads null counts, limit and minute without a crash or an undefined", async () => {
    serve([
      policy("patient_data", {
        busiest_client: "user:12", busiest_client_attempted: null, busiest_client_refused: null, busiest_client_minute: null,
        busiest_client_limit_per_minute: null, busiest_client_per_minute: null, busiest_client_share: null,
        exempt_clients: null, exempt_requests: null,
      }),
    ]);
    render(<RateLimitsPage />);
    expect(await busiestLine()).toBe("Busiest client: user #12");
    expect(within(rowOf("patient_data")).getByText("0%")).toBeTruthy();
    expect(document.body.textContent).not.toMatch(/undefined|NaN|null/);
  });

  it("gives the refused count only when the server sends it", async () => {
    serve([policy("patient_data", { busiest_client_refused: undefined })]);
    render(<RateLimitsPage />);
    expect(await busiestLine()).toMatch(/^Busiest client: demo-clinical-app: 480 attempted \(limit 100\/min\) in the minute at /);
  });
});
