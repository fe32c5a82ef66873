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

  it("gives up a refresh that never answers at the deadline, says the figures are older, and refreshes again", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let sent = 0;
    const aborted: boolean[] = [];
    const load = vi.fn((_url: string, signal?: AbortSignal) => {
      sent += 1;
      if (sent === 2) {
        signal?.addEventListener("abort", () => aborted.push(true));
        return new Promise(() => {}); // a dropped connection: no answer, no error, ever
      }
      return Promise.resolve({ n: sent });
    }) as never;
    const { result } = renderHook(() => useJson<{ n: number }>("/api/v1/benchmarks/runs/5/", { refreshMs: 7000, load }));
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { n: 1 } }));
    await act(async () => vi.advanceTimersByTimeAsync(7000)); // the refresh that hangs
    await act(async () => vi.advanceTimersByTimeAsync(59000)); // merely slow so far: waited for, no other request
    expect(sent).toBe(2);
    expect(result.current).not.toHaveProperty("refreshError");
    await act(async () => vi.advanceTimersByTimeAsync(1000)); // a minute unanswered
    // It was waited for for ever: no more requests, and the page showed the old figures without a word.
    expect(result.current).toMatchObject({
      status: "ready",
      data: { n: 1 },
      refreshError: { message: "The server did not answer within 60 s", code: null },
    });
    expect(aborted).toEqual([true]);
    await act(async () => vi.advanceTimersByTimeAsync(4000)); // the next tick asks again
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { n: 3 } }));
    expect(result.current).not.toHaveProperty("refreshError");
  });
});
