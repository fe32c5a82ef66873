import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { ChartProps } from "../../components/ui/Chart";

// uPlot draws on a canvas jsdom does not have: the charts' props are kept instead.
const charts: ChartProps[] = [];
vi.mock("../../components/ui/Chart", () => ({
  Chart: (props: ChartProps) => {
    charts.push(props);
    return null;
  },
}));

import InferencePage from "./InferencePage";

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

/** The deployments (none), and each series: the failed loads' points as given, tokens/s empty. */
function serve(failures: () => Response) {
  const fetch = vi.fn(async (url: string) => {
    if (url.startsWith("/api/v1/inference/deployments/")) return json({ results: [] });
    const metric = new URL(url, "http://host").searchParams.get("metric");
    if (metric === "inference_load_failures") return failures();
    return json({ metric, step: 900, points: [] });
  });
  vi.stubGlobal("fetch", fetch);
  return fetch;
}

const points = (values: number[]) => ({
  metric: "inference_load_failures",
  step: 900,
  points: values.map((value, i) => [new Date(Date.UTC(2026, 11, 5, 7, 15 * i)).toISOString(), value]),
});

const failureCharts = () => charts.filter((chart) => chart.series[0]?.label === "failed loads");

afterEach(() => {
  cleanup();
  charts.length = 0;
  vi.unstubAllGlobals();
});

describe("InferencePage failed model loads", () => {
  it("charts the failed loads of the series API over the last 24 h, with their total", async () => {
    const fetch = serve(() => json(points([0, 2, 0, 1])));
    render(
      <MemoryRouter>
        <InferencePage />
      </MemoryRouter>,
    );
    expect((await screen.findByTestId("load-failures-total")).textContent).toBe("3 failed model loads in the last 24 h.");
    const chart = failureCharts().at(-1)!;
    expect(chart.series[0].values).toEqual([0, 2, 0, 1]);
    expect(chart.x).toEqual([0, 1, 2, 3].map((i) => Date.UTC(2026, 11, 5, 7, 15 * i) / 1000));
    expect(chart.title).toContain("last 24 h");
    const asked = fetch.mock.calls.map(([url]) => new URL(String(url), "http://host")).find((url) => url.searchParams.get("metric") === "inference_load_failures")!;
    expect(asked.pathname).toBe("/api/v1/metrics/series/");
    expect(asked.searchParams.get("step")).toBe("900");
  });

  it("says none failed where the series has only zeros", async () => {
    serve(() => json(points([0, 0, 0])));
    render(
      <MemoryRouter>
        <InferencePage />
      </MemoryRouter>,
    );
    expect((await screen.findByTestId("load-failures-total")).textContent).toBe("No failed model load in the last 24 h.");
  });

  it("says why the failed loads could not be read, and draws no chart of them", async () => {
    serve(() => json({ detail: "You do not have permission to perform this action." }, 403));
    render(
      <MemoryRouter>
        <InferencePage />
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getAllByRole("alert").some((alert) => alert.textContent?.includes("Could not load failed model loads"))).toBe(true));
    expect(failureCharts()).toEqual([]);
    expect(screen.queryByTestId("load-failures-total")).toBeNull();
  });
});
