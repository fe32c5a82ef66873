import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom does not have; the chart's props are what this test checks.
vi.mock("../../components/ui/Chart", () => ({
  Chart: ({ x, series }: { x: number[]; series: { label: string; values: unknown[]; spanGaps?: boolean }[] }) => (
    <figure data-testid="chart" data-x={x.join(",")}>
      {series.map((s) => (
        <span key={s.label} data-testid="series" data-span={String(Boolean(s.spanGaps))}>
          {`${s.label}=${s.values.map((v) => (v === null ? "null" : v)).join(",")}`}
        </span>
      ))}
    </figure>
  ),
}));

import BenchmarksPage from "./BenchmarksPage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const run = (id: number, planId: number, plan: string, p95: number | null, minute: number) => ({
  id, plan, plan_id: planId, kind: "load", service: "clinical-api", status: "succeeded", passed: true,
  created_at: `2026-11-27T12:0${minute}:00Z`, finished_at: `2026-11-27T12:0${minute}:30Z`, progress: 1,
  summary: p95 === null ? { requests: 100, rps: 10 } : { requests: 100, rps: 10, p95_ms: p95 }, regressions: [],
});

describe("BenchmarksPage: p95 of successive runs", () => {
  it("draws one series per plan, never joining one plan's runs to another's", async () => {
    // newest first, as the API lists them: a patient-card plan (~500 ms) and a /healthz plan (~6 ms), interleaved
    const results = [
      run(4, 2, "healthz", 6.8, 4),
      run(3, 1, "clinical-api load", 520, 3),
      run(2, 2, "healthz", 6.5, 2),
      run(1, 1, "clinical-api load", 513, 1),
    ];
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ results }), { status: 200, headers: { "Content-Type": "application/json" } })));
    render(
      <MemoryRouter>
        <BenchmarksPage />
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getAllByTestId("series")).toHaveLength(2));
    const series = screen.getAllByTestId("series").map((s) => s.textContent);
    expect(series).toEqual(["clinical-api load p95 ms=513,null,520,null", "healthz p95 ms=null,6.5,null,6.8"]);
    expect(screen.getAllByTestId("series").map((s) => s.dataset.span)).toEqual(["true", "true"]);
    expect(screen.getByTestId("chart").dataset.x!.split(",")).toHaveLength(4); // oldest first, one x per run
  });
});
