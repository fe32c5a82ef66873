import { cleanup, render, screen } from "@testing-library/react";
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
});
