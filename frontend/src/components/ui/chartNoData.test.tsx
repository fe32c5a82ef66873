import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom lacks: record the options and data it is given.
const built: { options: any; data: any }[] = [];
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
    destroy() {}
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

import { Chart } from "./Chart";
import { describeChart, legendValue } from "./chartText";

const AT = Date.parse("2026-12-04T10:00:00Z") / 1000;

afterEach(() => {
  cleanup();
  built.length = 0;
});

// The series answer null for the steps before a service's first request (and where a p95 is undefined):
// those are a gap and "no data", never a 0 line.
describe("steps with no data", () => {
  it("are drawn as a gap, not joined across nor turned into 0", () => {
    render(<Chart title="Latency" unit=" ms" x={[AT, AT + 60, AT + 120, AT + 180]} series={[{ label: "p95", values: [null, null, 40, 42] }]} />);
    const { options, data } = built[0];
    expect(data[1]).toEqual([null, null, 40, 42]);
    expect(options.series[1].spanGaps).toBe(false);
  });

  it("read 'no data' in the legend at the cursor, and a measured 0 reads 0", () => {
    render(<Chart title="Throughput" x={[AT, AT + 60, AT + 120]} series={[{ label: "req/s", values: [null, 0, 2] }]} />);
    const { options } = built[0];
    expect(options.legend.live).toBe(true);
    expect(options.series[1].value({}, null, 1, 0)).toBe("no data");
    expect(options.series[1].value({}, 0, 1, 1)).toBe("0");
    expect(options.series[1].value({}, 2, 1, 2)).toBe("2");
    expect(options.series[1].value({}, null, 1, null)).toBe(""); // the cursor off the plot: no value shown
  });

  it("are said in the chart's text alternative", () => {
    render(<Chart title="Errors" unit="%" x={[AT, AT + 60, AT + 120]} series={[{ label: "5xx %", values: [null, 0, 50] }]} />);
    const label = screen.getByRole("img").getAttribute("aria-label")!;
    expect(label).toContain("5xx %: 2 values, 0% to 50%");
    expect(label).toContain("no data at 1 of 3 times");
  });
});

describe("legendValue", () => {
  it("says no data for a missing or invalid value and the number for a real one", () => {
    expect(legendValue(null, " ms")).toBe("no data");
    expect(legendValue(undefined)).toBe("no data");
    expect(legendValue(Number.NaN)).toBe("no data");
    expect(legendValue(0, " ms")).toBe("0 ms");
    expect(legendValue(12.345, " ms")).toBe("12.35 ms");
  });

  it("leaves a series without gaps described as before", () => {
    const text = describeChart({ title: "Throughput", x: [AT, AT + 60], series: [{ label: "req/s", values: [1, 2] }] });
    expect(text).not.toContain("no data");
  });
});
