import { act, cleanup, render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

import OverviewPage from "./OverviewPage";

const service = {
  id: 7, name: "Clinical data API", slug: "clinical-api", kind: "api", owner_team: "Clinical platform", is_active: true,
  slo_p95_ms: 200, slo_p99_ms: 500, slo_avg_ms: 100, slo_min_rps: 100, slo_error_rate_pct: 5,
};

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function serve(slo: () => Response) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => (url.startsWith("/api/v1/metrics/slo/") ? slo() : json({ results: [service] }))),
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const renderPage = () =>
  render(
    <MemoryRouter>
      <OverviewPage />
    </MemoryRouter>,
  );

describe("OverviewPage SLO status", () => {
  it("says the SLO status could not be loaded, not that every service had no traffic", async () => {
    serve(() => json({ detail: "You do not have permission to perform this action." }, 403));
    renderPage();
    expect((await screen.findByText(/Could not load the SLO status/)).textContent).toContain("lacks the permission");
    expect(screen.getByText("Clinical data API")).toBeTruthy();
    expect(screen.queryByText("no traffic")).toBeNull();
    expect(screen.getByTestId("slo-unknown-clinical-api").textContent).toBe("—");
  });

  it("says a service without requests in the last hour had no traffic", async () => {
    serve(() => json({ results: [] }));
    renderPage();
    expect(await screen.findByText("no traffic")).toBeTruthy();
    expect(screen.queryByText(/Could not load the SLO status/)).toBeNull();
  });

  it("says a refresh of the SLO status failed, the figures shown being older", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const window = { count: 120, p95_ms: 40, p99_ms: 80, error_rate_pct: 0, p95_met: true, p99_met: true, error_rate_met: true, error_budget_remaining: 0.75 };
      const answers = [
        () => json({ results: [{ service: "clinical-api", name: "Clinical data API", windows: { "1h": window, "24h": window, "7d": window } }] }),
        () => json({ detail: "Server error." }, 500),
      ];
      serve(() => (answers.shift() ?? answers[0])());
      renderPage();
      expect(await screen.findByText(/met · p95 40.0 ms/)).toBeTruthy();
      await act(async () => {
        vi.advanceTimersByTime(30000);
      });
      expect((await screen.findByTestId("refresh-error")).textContent).toMatch(/^Could not refresh the SLO status: Server error\./);
      expect(screen.getByText(/met · p95 40.0 ms/)).toBeTruthy();
    } finally {
      vi.useRealTimers();
    }
  });
});
