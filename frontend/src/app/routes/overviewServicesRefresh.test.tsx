import { act, cleanup, render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

import OverviewPage from "./OverviewPage";

const service = (id: number, slug: string, name: string) => ({
  id, name, slug, kind: "api", owner_team: "Clinical platform", is_active: true,
  slo_p95_ms: 200, slo_p99_ms: 500, slo_avg_ms: 100, slo_min_rps: 100, slo_error_rate_pct: 5,
});

const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("OverviewPage services table", () => {
  it("drops a service hidden in admin and shows a rename at the next refresh, without a reload", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const answers = [
      [service(1, "clinical-api", "Clinical data API"), service(2, "fhir-api", "FHIR API")],
      [service(1, "clinical-api", "Clinical records API")], // fhir-api hidden, clinical-api renamed
    ];
    const fetch = vi.fn(async (url: string) =>
      url.startsWith("/api/v1/metrics/slo/") ? json({ results: [] }) : json({ results: answers.length > 1 ? answers.shift() : answers[0] }),
    );
    vi.stubGlobal("fetch", fetch);
    render(
      <MemoryRouter>
        <OverviewPage />
      </MemoryRouter>,
    );
    expect(await screen.findByText("FHIR API")).toBeTruthy();
    expect(screen.getByText("Clinical data API")).toBeTruthy();

    await act(async () => {
      vi.advanceTimersByTime(30000); // the SLO status's poll
    });
    expect(await screen.findByText("Clinical records API")).toBeTruthy();
    expect(screen.queryByText("FHIR API")).toBeNull();
    expect(screen.queryByText("Clinical data API")).toBeNull();
    const serviceReads = fetch.mock.calls.filter(([url]) => url.startsWith("/api/v1/services/"));
    expect(serviceReads.length).toBe(2);
  });
});
