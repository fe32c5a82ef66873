import { describe, expect, it } from "vitest";

import { fixed, percent, seconds } from "./format";
import { applyTheme, initialTheme } from "./theme";

describe("theme", () => {
  it("keeps the chosen theme on the document and in storage, and starts from it", () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    applyTheme("dark", storage);
    expect(document.documentElement.dataset.theme).toBe("dark");
    expect(initialTheme(storage)).toBe("dark");
    applyTheme("light", storage);
    expect(initialTheme(storage)).toBe("light");
  });
});

describe("format", () => {
  it("shows a dash for missing numbers and readable durations", () => {
    expect(fixed(null)).toBe("—");
    expect(fixed(12.345, 1, " ms")).toBe("12.3 ms");
    expect(percent(0.8123)).toBe("81.2%");
    expect(seconds(1800)).toBe("30 min");
    expect(seconds(7200)).toBe("2 h");
    expect(seconds(45)).toBe("45 s");
  });
});
