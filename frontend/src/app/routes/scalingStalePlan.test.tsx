import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom does not have; the chart's title is what this test checks.
vi.mock("../../components/ui/Chart", () => ({
  Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure>,
}));

import ScalingPage from "./ScalingPage";

const NOW = Date.parse("2026-12-06T12:00:00Z");

function serve(plan: Record<string, unknown>) {
  const body = {
    results: [{
      id: 1, service: "clinical-api", service_name: "Clinical data API", min_replicas: 2, max_replicas: 50, floor_replicas: 2,
      vpa_mode: "Off", keda_enabled: true, emergency_mode: false, emergency_manual: false, emergency_until: null,
      emergency_alert_rule: null, apply_state: "active", apply_error: "", history_source: "prometheus",
      forecasts: {}, earlier_request_rate: null, plan,
    }],
  };
  vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } })));
}

const plan = (createdAt: string, stale: boolean) => ({
  created_at: createdAt, stale, peak_replicas: 8, min_replicas: 2, emergency: false, reasons: [],
  hours: [{ at: "2026-12-03T13:00:00Z", replicas: 2 }, { at: "2026-12-03T14:00:00Z", replicas: 8 }],
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("ScalingPage's replica plan", () => {
  it("says a stale plan is stale, and how old it is", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(NOW);
    serve(plan("2026-12-03T12:00:00Z", true));
    render(<ScalingPage />);
    const stale = await screen.findByTestId("plan-stale-1");
    expect(stale.textContent).toContain("Stale replica plan");
    expect(stale.textContent).toContain("3 days old");
    expect(stale.textContent).toContain("KEDA cron windows repeat its hours every day");
    expect(screen.getByTestId("chart").textContent).toBe("Planned replicas (peak 8), stale: 3 days old");
  });

  it("says nothing of staleness for a fresh plan", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(NOW);
    serve(plan("2026-12-06T11:00:00Z", false));
    render(<ScalingPage />);
    expect((await screen.findByTestId("chart")).textContent).toBe("Planned replicas (peak 8)");
    expect(screen.queryByTestId("plan-stale-1")).toBeNull();
    expect(document.body.textContent).not.toMatch(/stale/i);
  });
});
