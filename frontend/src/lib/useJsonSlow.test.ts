import { act, renderHook, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { useJson } from "./useJson";

afterEach(() => vi.useRealTimers());

describe("useJson refreshing against a server slower than its refresh", () => {
  it("lets the answer arrive instead of aborting it at every tick", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    // Each answer takes 7 s (a loaded server); the run page refreshes every 5 s.
    let sent = 0;
    const load = vi.fn(
      (_url: string, signal?: AbortSignal) =>
        new Promise((resolve, reject) => {
          sent += 1;
          const timer = setTimeout(() => resolve({ n: sent }), 7000);
          signal?.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(new DOMException("Aborted", "AbortError"));
          });
        }),
    ) as never;
    const { result } = renderHook(() => useJson<{ n: number }>("/api/v1/benchmarks/runs/5/", { refreshMs: 5000, load }));
    for (let second = 0; second < 30; second += 1) {
      await act(async () => vi.advanceTimersByTimeAsync(1000)); // a second at a time: React renders between
    }
    // Every tick aborted the request on its way and sent another: the page said "Loading…" for ever.
    await waitFor(() => expect(result.current.status).toBe("ready"));
    expect(sent).toBeLessThanOrEqual(4);
  });
});
