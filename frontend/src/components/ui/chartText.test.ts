import { describe, expect, it } from "vitest";

import { describeChart, hasNoValues, isolatedIndexes, singleReading, xRange } from "./chartText";

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
