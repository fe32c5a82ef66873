import { describe, expect, it } from "vitest";

import { axisSize, tickDecimals, tickLabels } from "./axis";

describe("tickDecimals", () => {
  it("gives as many decimals as the increment has", () => {
    expect(tickDecimals(20)).toBe(0);
    expect(tickDecimals(1)).toBe(0);
    expect(tickDecimals(2.5)).toBe(1);
    expect(tickDecimals(0.25)).toBe(2);
    expect(tickDecimals(0.002)).toBe(3);
    expect(tickDecimals(0.1 + 0.2)).toBe(1); // float noise is no digit
    expect(tickDecimals(0)).toBe(2);
  });
});

describe("tickLabels", () => {
  it("gives distinct ticks distinct labels", () => {
    const ticks = [0, 0.002, 0.004, 0.006, 0.008, 0.01];
    const labels = tickLabels(ticks, 0.002);
    expect(labels).toEqual(["0.000", "0.002", "0.004", "0.006", "0.008", "0.010"]);
    expect(new Set(labels).size).toBe(ticks.length);
  });

  it("shows whole ticks whole, with the unit, and no negative zero", () => {
    expect(tickLabels([100, 120, 140], 20, " mmHg")).toEqual(["100 mmHg", "120 mmHg", "140 mmHg"]);
    expect(tickLabels([-0.5, -1e-17, 0.5], 0.5, "%")).toEqual(["-0.5%", "0.0%", "0.5%"]);
  });
});

describe("axisSize", () => {
  it("fits the widest label as measured, plus the tick and the gap", () => {
    const measure = (text: string) => text.length * 8.4; // wider than the old 7 px a character
    expect(axisSize(["100 mmHg", "140 mmHg", "60 mmHg"], measure, 10, 5)).toBe(Math.ceil(8 * 8.4 + 10 + 5 + 2));
  });

  it("measures, not counts: a narrow long label needs less than a wide short one", () => {
    const measure = (text: string) => (text === "l00%" ? 20 : 40);
    expect(axisSize(["l00%"], measure, 10, 5)).toBeLessThan(axisSize(["WW"], measure, 10, 5));
    expect(axisSize([], measure, 10, 5)).toBe(17);
  });
});
