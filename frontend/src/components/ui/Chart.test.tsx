import { act, cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom lacks: record the options it is given, and play the plot's part.
const built: { options: any; data: any }[] = [];
let destroyed = 0;
vi.mock("uplot", () => {
  class FakePlot {
    static paths = { bars: () => undefined, stepped: () => undefined };
    static pxRatio = 1;
    static rangeNum(min: number, max: number) {
      return [min, max];
    }
    constructor(options: unknown, data: unknown) {
      built.push({ options, data });
    }
    setData() {}
    setSize() {}
    destroy() {
      destroyed += 1;
    }
  }
  return { default: FakePlot };
});
vi.stubGlobal(
  "ResizeObserver",
  class {
    observe() {}
    disconnect() {}
  },
);

import { zoneName } from "../../lib/format";
import { Chart } from "./Chart";

const AT = Date.parse("2026-12-04T10:00:00Z") / 1000;

afterEach(() => {
  cleanup();
  built.length = 0;
});

describe("Chart", () => {
  it("draws a series of one reading as a dot in the middle, and says its value", () => {
    render(<Chart title="Heart rate (1 readings)" x={[AT]} series={[{ label: "bpm", values: [72] }]} unit="/min" />);
    const { options, data } = built[0];
    const plot = { data };
    expect(options.series[1].points.show(plot, 1)).toBe(true);
    expect(options.series[1].points.filter(plot, 1)).toEqual([0]);
    expect(options.scales.x.range(plot, AT, AT + 86400)).toEqual([AT - 1800, AT + 1800]);
    expect(screen.getByTestId("single-reading").textContent).toContain("bpm 72/min");
    expect(screen.queryByText("No data in this range yet.")).toBeNull();
    expect(screen.getByRole("img").getAttribute("aria-label")).toContain("one value, 72/min");
  });

  it("names the time zone its times are drawn and said in", () => {
    render(<Chart title="Throughput" x={[AT, AT + 60]} series={[{ label: "req/s", values: [1, 2] }]} />);
    const zone = zoneName();
    expect(zone).not.toBe("");
    expect(document.querySelector("figcaption")!.textContent).toBe(`Throughput · times in ${zone}`);
    expect(screen.getByRole("img").getAttribute("aria-label")).toContain(new Date(AT * 1000).toLocaleString(undefined, { timeZoneName: "short" }));
  });

  it("draws no dots on a continuous line", () => {
    render(<Chart title="Throughput" x={[AT, AT + 60]} series={[{ label: "req/s", values: [1, 2] }]} />);
    const { options, data } = built[0];
    expect(options.series[1].points.show({ data }, 1)).toBe(false);
    expect(screen.queryByTestId("single-reading")).toBeNull();
  });

  it("says there is no data when every value is missing, rather than drawing empty axes", () => {
    render(<Chart title="Errors" x={[AT, AT + 60]} series={[{ label: "5xx %", values: [null, null] }]} />);
    expect(screen.getByText("No data in this range yet.")).toBeTruthy();
  });

  it("is built again in the new theme's colours when the theme changes", async () => {
    document.documentElement.dataset.theme = "light";
    render(<Chart title="Throughput" x={[AT, AT + 60]} series={[{ label: "req/s", values: [1, 2] }]} />);
    expect(built).toHaveLength(1);
    await act(async () => {
      document.documentElement.dataset.theme = "dark";
      await new Promise((resolve) => setTimeout(resolve, 0)); // MutationObserver callbacks are microtasks
    });
    expect(built).toHaveLength(2);
    expect(destroyed).toBeGreaterThanOrEqual(1);
  });

  it("leaves a band's edges out of the legend, which has no line for them", () => {
    render(
      <Chart
        title="Forecast"
        x={[AT, AT + 60]}
        series={[
          { label: "P90", values: [3, 4], band: true },
          { label: "P50", values: [2, 3] },
          { label: "P10", values: [1, 2], band: true },
        ]}
        bands={[[1, 3]]}
      />,
    );
    // uPlot's legend when not live: one row per series, none for x (initLegendRow skips it).
    const root = document.createElement("div");
    root.innerHTML = `<table class="u-legend">${["P90", "P50", "P10"].map((label) => `<tr class='u-series'><th>${label}</th></tr>`).join("")}</table>`;
    built[0].options.hooks.init.forEach((hook: (u: unknown) => void) => hook({ root }));
    const shown = [...root.querySelectorAll<HTMLElement>(".u-series")].filter((row) => row.style.display !== "none").map((row) => row.textContent);
    expect(shown).toEqual(["P50"]);
  });

  it("gives counts whole-number ticks and a 0 to 1 axis when they are all zero", () => {
    render(<Chart title="Failed loads" x={[AT, AT + 60]} kind="bars" valueKind="count" series={[{ label: "failed", values: [0, 0] }]} />);
    const { options } = built[0];
    expect(options.scales.y.range({}, 0, 0)).toEqual([0, 1]);
    expect(options.axes[1].incrs.every(Number.isInteger)).toBe(true);
  });

  it("caps a percentage axis at 100", () => {
    render(<Chart title="CPU" x={[AT, AT + 60]} unit="%" series={[{ label: "cpu", values: [60, 98] }]} />);
    expect(built[0].options.scales.y.range({}, 60, 98)).toEqual([0, 100]);
  });

  it("leaves the minutes before the first reading empty, with no line drawn through them", () => {
    render(<Chart title="Throughput" x={[AT, AT + 60, AT + 120]} series={[{ label: "req/s", values: [null, 4, 5] }]} />);
    const { options, data } = built[0];
    expect(data[1]).toEqual([null, 4, 5]);
    expect(options.series[1].spanGaps).toBe(false);
  });
});
