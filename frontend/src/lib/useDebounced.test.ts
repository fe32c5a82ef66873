import { act, renderHook } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { useDebounced } from "./useDebounced";

afterEach(() => vi.useRealTimers());

describe("useDebounced", () => {
  it("gives the first value at once and a later one only after it has stopped changing", () => {
    vi.useFakeTimers();
    const { result, rerender } = renderHook(({ value }) => useDebounced(value, 300), { initialProps: { value: "" } });
    expect(result.current).toBe("");
    for (const typed of ["P", "Pa", "Pat"]) {
      act(() => vi.advanceTimersByTime(100)); // a keystroke every 100 ms
      rerender({ value: typed });
    }
    expect(result.current).toBe(""); // still typing
    act(() => vi.advanceTimersByTime(299));
    expect(result.current).toBe("");
    act(() => vi.advanceTimersByTime(1));
    expect(result.current).toBe("Pat");
  });
});
