import { describe, expect, it } from "vitest";

import { ANNOUNCE_EVERY_MS, throttledText } from "./useThrottledText";

describe("throttledText", () => {
  it("takes the first text at once", () => {
    expect(throttledText(null, "a", 1000)).toEqual({ text: "a", at: 1000 });
  });

  it("keeps the last text until the interval has passed, then takes the new one", () => {
    const first = throttledText(null, "a", 0);
    // A new figure every second for most of a minute: nothing new is announced.
    for (let second = 1; second < ANNOUNCE_EVERY_MS / 1000; second += 1) {
      expect(throttledText(first, `figure ${second}`, second * 1000)).toBe(first);
    }
    expect(throttledText(first, "b", ANNOUNCE_EVERY_MS)).toEqual({ text: "b", at: ANNOUNCE_EVERY_MS });
  });

  it("does not restart the interval for the same text", () => {
    const first = throttledText(null, "a", 0);
    expect(throttledText(first, "a", ANNOUNCE_EVERY_MS * 3)).toBe(first);
    expect(throttledText(first, "b", ANNOUNCE_EVERY_MS * 3 + 1).text).toBe("b");
  });
});
