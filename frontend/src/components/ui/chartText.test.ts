import { describe, expect, it } from "vitest";

import { COUNT_INCREMENTS, describeChart, hasNoValues, hiddenLegendRows, isolatedIndexes, singleReading, xRange, yRange } from "./chartText";

const AT = Date.parse("2026-12-04T10:00:00Z") / 1000;

describe("isolatedIndexes", () => {
  it("finds values with no value beside them, which a line cannot draw", () => {
    expect(isolatedIndexes([72])).toEqual([0]);
    expect(isolatedIndexes([1, null, 3, 4, null, 6])).toEqual([0, 5]);
    expect(isolatedIndexes([1, 2, 3])).toEqual([]);
    expect(isolatedIndexes([null, null])).toEqual([]);
  });
});

describe("xRange", () => {
  it("puts a single reading in the middle of the plot, not on its left edge", () => {
    expect(xRange([AT], AT, AT + 86400, true)).toEqual([AT - 1800, AT + 1800]);
    expect(xRange([5], 5, 5, false)).toEqual([4, 6]);
    expect(xRange([AT, AT + 60], AT, AT + 60, true)).toEqual([AT, AT + 60]);
  });

  it("never draws a recent single reading's hour into the future", () => {
    // Read 5 minutes ago: the plot ends now, with the hour before it (it ended 30 minutes from now).
    expect(xRange([AT], AT, AT, true, (AT + 300) * 1000)).toEqual([AT + 300 - 3600, AT + 300]);
    // Read just now: a minute of margin, so the dot is not cut by the plot's edge.
    expect(xRange([AT], AT, AT, true, AT * 1000)).toEqual([AT + 60 - 3600, AT + 60]);
  });
});

describe("yRange", () => {
  it("spans 0 to 1 for nothing but zeros, or nothing at all", () => {
    expect(yRange(0, 0, "count")).toEqual([0, 1]);
    expect(yRange(0, 0, "number")).toEqual([0, 1]);
    expect(yRange(null, null, "count")).toEqual([0, 1]);
  });

  it("starts counts at 0 and ends them on a whole number", () => {
    expect(yRange(3, 7, "count")).toEqual([0, 8]);
    expect(yRange(0, 0.2, "count")).toEqual([0, 1]);
    expect(COUNT_INCREMENTS.every(Number.isInteger)).toBe(true);
  });

  it("never takes a percentage past 100", () => {
    expect(yRange(40, 99, "percent")).toEqual([0, 100]);
    expect(yRange(10, 50, "percent")).toEqual([0, 55]);
  });

  it("leaves other numbers to the chart", () => {
    expect(yRange(10, 50, "number")).toBeNull();
  });
});

describe("hiddenLegendRows", () => {
  const forecast = [{ label: "actual" }, { label: "P90", band: true }, { label: "P50" }, { label: "P10", band: true }];
  it("hides the band edges' own rows, uPlot's legend having no x row", () => {
    expect(hiddenLegendRows(forecast, 4)).toEqual([1, 3]);
  });
  it("skips an x row where there is one", () => {
    expect(hiddenLegendRows(forecast, 5)).toEqual([2, 4]);
  });
});

describe("describeChart", () => {
  it("says each series' range and latest value, not only its name", () => {
    const text = describeChart({
      title: "Heart rate",
      x: [AT, AT + 3600, AT + 7200],
      series: [{ label: "bpm", values: [70, 91.456, 64] }],
      unit: "/min",
    });
    expect(text).toContain("Heart rate, from ");
    expect(text).toContain("bpm: 3 values, 64/min to 91.46/min, latest 64/min at ");
  });

  it("says a single reading and its value", () => {
    const chart = { title: "Heart rate", x: [AT], series: [{ label: "bpm", values: [72] }], unit: "/min" };
    expect(describeChart(chart)).toContain("bpm: one value, 72/min at ");
    expect(singleReading(chart)).toMatch(/^One reading, at .+: bpm 72\/min\.$/);
  });

  it("leaves out band edges and says when there is nothing", () => {
    const chart = {
      title: "Forecast",
      x: [AT, AT + 3600],
      series: [
        { label: "P50", values: [1, 2] },
        { label: "P90", values: [3, 4], band: true },
      ],
    };
    expect(describeChart(chart)).not.toContain("P90");
    expect(hasNoValues({ x: [AT, AT + 60], series: [{ label: "a", values: [null, null] }] })).toBe(true);
    expect(describeChart({ title: "Errors", x: [AT], series: [{ label: "5xx", values: [null] }] })).toBe("Errors: no data.");
  });

  it("names categories on a bar chart", () => {
    const text = describeChart({ title: "Modes", x: [0, 1], xLabels: ["fp32", "int8"], time: false, series: [{ label: "ms", values: [10, 4] }] });
    expect(text).toContain("from fp32 to int8");
    expect(text).toContain("latest 4 at int8");
  });
});
