import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { ChartProps } from "../../components/ui/Chart";

// uPlot draws on a canvas jsdom does not have: the charts' props are kept instead.
const charts: ChartProps[] = [];
vi.mock("../../components/ui/Chart", () => ({
  Chart: (props: ChartProps) => {
    charts.push(props);
    return <figure data-testid="chart">{props.title}</figure>;
  },
}));

import BenchmarkRunPage from "./BenchmarkRunPage";
import BenchmarksPage from "./BenchmarksPage";
import InferencePage from "./InferencePage";
import RateLimitsPage from "./RateLimitsPage";

const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });

function serve(routes: Record<string, unknown>) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => {
      if (url.startsWith("/api/v1/metrics/series/")) {
        const metric = new URL(url, "http://host").searchParams.get("metric");
        return json({ metric, step: 900, points: [["2026-12-05T07:00:00Z", 1], ["2026-12-05T07:15:00Z", 2]] });
      }
      const path = Object.keys(routes).find((prefix) => url.startsWith(prefix));
      return path ? json(routes[path]) : new Response("{}", { status: 404 });
    }),
  );
}

/** The last drawn chart of each title: its unit and what its values are. */
function axes(): Record<string, string> {
  const byTitle: Record<string, string> = {};
  for (const chart of charts) byTitle[chart.title] = `${chart.unit ?? ""}|${chart.valueKind ?? ""}`;
  return byTitle;
}

afterEach(() => {
  cleanup();
  charts.length = 0;
  vi.unstubAllGlobals();
});

const profile = (mode: string) => ({
  mode, available: true, chosen: mode === "int8", verdict: "", p95_ms_batch1: 5, best_batch_size: 8, sequences_per_s: 100,
  tokens_per_s: null, tokens_per_s_batch1: null, ttft_ms: null, tpot_ms: null, peak_memory_mb: 10, weights_mb: 5, fidelity_loss: 0,
});

describe("chart axes say their unit", () => {
  it("on the Inference page: tokens per second, sequences per second, and failed loads as whole counts", async () => {
    serve({
      "/api/v1/inference/deployments/": {
        results: [{ id: 1, name: "triage", task: "embedding", source: "", quantization: "auto", serving_quantization: "int8", serving_reason: null,
                    chosen_quantization: "int8", load_failure: null, load_failed_at: null, measured_at: null, max_batch_size: 8, slo_p95_ms: 50,
                    fidelity_budget: 0.01, profiles: [profile("fp32"), profile("int8")] }],
      },
    });
    render(
      <MemoryRouter>
        <InferencePage />
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getAllByTestId("chart")).toHaveLength(3));
    const shown = axes();
    expect(shown["Generated tokens per second, served traffic, last 24 h"]).toBe(" tok/s|");
    expect(shown["Failed model loads per 15 minutes, every deployment, last 24 h"]).toBe("|count");
    expect(shown["Sequences per second by mode (best batch)"]).toBe(" seq/s|");
  });

  it("on the Rate limits page: requests per minute, counted in whole requests", async () => {
    serve({
      "/api/v1/ratelimits/": {
        results: [{ id: 1, scope: "patient_data", description: "", enabled: true, requests: 100, effective_requests: 100, period_seconds: 60,
                    burst_per_second: null, fail_open: true, adaptive: false, current_factor: 1, adjustments: [],
                    usage: { requests: 3, refused: 0, busiest_client: null, busiest_client_minute: null, busiest_client_per_minute: 0,
                             busiest_client_limit_per_minute: null, busiest_client_share: 0, exempt_clients: [], exempt_requests: 0,
                             minutes: [["2026-12-05T07:00:00Z", 3, 0]] } }],
      },
    });
    render(<RateLimitsPage />);
    await screen.findByTestId("chart");
    expect(axes()["patient_data: requests and 429s per minute"]).toBe("/min|count");
  });

  it("on the Benchmarks pages: milliseconds, requests per second and users each on their own axis", async () => {
    const run = {
      id: 7, plan: "load", plan_id: 1, kind: "load", service: "clinical-api", status: "succeeded", passed: true,
      created_at: "2026-12-05T07:00:00Z", finished_at: "2026-12-05T07:05:00Z", progress: 1, summary: { p95_ms: 40 }, regressions: [],
      timeline: [{ t: 0, p95_ms: 40, rps: 10, users: 5 }, { t: 1, p95_ms: 42, rps: 11, users: 5 }],
      histogram: [[10, 3], [20, 5]], verdicts: [], findings: {}, error: "", report_url: "/r/7/",
    };
    serve({ "/api/v1/benchmarks/runs/7/": run, "/api/v1/benchmarks/runs/": { results: [run] } });
    render(
      <MemoryRouter initialEntries={["/benchmarks/7"]}>
        <Routes>
          <Route path="/benchmarks/:runId" element={<BenchmarkRunPage />} />
        </Routes>
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getAllByTestId("chart").length).toBeGreaterThanOrEqual(3));
    for (const chart of charts.filter((c) => c.series.length > 0)) {
      const labels = chart.series.map((s) => s.label);
      // One kind of number per axis: p95 in ms and req/s shared one before.
      expect(labels.some((l) => l.includes("ms")) && labels.some((l) => l.includes("req/s"))).toBe(false);
    }
    const shown = axes();
    expect(shown["Latency over the run (p95 of each second's successes)"]).toBe(" ms|");
    expect(shown["Throughput over the run"]).toBe(" req/s|");
    expect(shown["Latency histogram (requests per ms bucket)"]).toBe("|count");
    cleanup();
    charts.length = 0;
    render(
      <MemoryRouter>
        <BenchmarksPage />
      </MemoryRouter>,
    );
    await screen.findByTestId("chart");
    expect(axes()["p95 of successive runs (dashed lines: regressions)"]).toBe(" ms|");
  });
});

describe("latencyTitle", () => {
  it("says when a point covers more than a second", async () => {
    const { latencyTitle } = await import("./BenchmarkRunPage");
    expect(latencyTitle(1)).toBe("Latency over the run (p95 of each second's successes)");
    expect(latencyTitle(58)).toBe("Latency over the run (p95 of the successes: the highest second of each 58 s)");
  });
});
