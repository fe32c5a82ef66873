import { act, renderHook, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { ApiError } from "../../lib/api";
import { fetchSeries } from "./series";
import { useSeries } from "./useSeries";

afterEach(() => vi.useRealTimers());

describe("useSeries", () => {
  it("fetches again as time passes, keeping the last series through a failure and saying it", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const load = vi
      .fn()
      .mockResolvedValueOnce({ x: [1], values: [[10]] })
      .mockRejectedValueOnce(new ApiError(503, "The database is unavailable"))
      .mockResolvedValueOnce({ x: [1, 2], values: [[10, 12]] });
    const { result } = renderHook(() => useSeries(["cache_hit_rate_pct"], "24h", { refreshMs: 60000, load }));
    await waitFor(() => expect(result.current.data?.x).toEqual([1]));
    await act(async () => vi.advanceTimersByTimeAsync(60000));
    await waitFor(() => expect(result.current.error?.code).toBe(503));
    expect(result.current.data?.x).toEqual([1]);
    await act(async () => vi.advanceTimersByTimeAsync(60000));
    await waitFor(() => expect(result.current.data?.x).toEqual([1, 2]));
    expect(result.current.error).toBeNull();
    expect(load).toHaveBeenCalledTimes(3);
  });

  it("gives up a request that never answers at the deadline, says so, and asks again at the next tick", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const signals: AbortSignal[] = [];
    const load = vi.fn((_metrics: string[], _range: string, { signal }: { signal?: AbortSignal } = {}) => {
      signals.push(signal as AbortSignal);
      // The second never answers (a dropped connection); fetch has no deadline of its own.
      return signals.length === 2 ? new Promise<never>(() => {}) : Promise.resolve({ x: [signals.length], values: [[1]] });
    });
    const { result, unmount } = renderHook(() => useSeries(["cache_hit_rate_pct"], "24h", { refreshMs: 7000, load }));
    await waitFor(() => expect(result.current.data?.x).toEqual([1]));
    await act(async () => vi.advanceTimersByTimeAsync(7000 + 59000)); // hung for 59 s: merely slow, ticks skipped
    expect(load).toHaveBeenCalledTimes(2);
    expect(result.current.error).toBeNull();
    await act(async () => vi.advanceTimersByTimeAsync(1000));
    // It was waited for for ever: the chart kept its first figures without a word and was never fetched again.
    expect(result.current.error).toEqual({ message: "The server did not answer within 60 s", code: null });
    expect(result.current.data?.x).toEqual([1]);
    expect(signals[1].aborted).toBe(true);
    await act(async () => vi.advanceTimersByTimeAsync(3000)); // the next tick
    await waitFor(() => expect(result.current.data?.x).toEqual([3]));
    expect(result.current.error).toBeNull();
    unmount();
  });

  it("aborts the request on its way when the chart goes away", async () => {
    const signals: AbortSignal[] = [];
    const load = vi.fn((_metrics: string[], _range: string, { signal }: { signal?: AbortSignal } = {}) => {
      signals.push(signal as AbortSignal);
      return new Promise<never>(() => {});
    });
    const { unmount } = renderHook(() => useSeries(["cache_hit_rate_pct"], "24h", { load }));
    expect(signals[0].aborted).toBe(false);
    unmount();
    expect(signals[0].aborted).toBe(true);
  });
});

describe("fetchSeries", () => {
  it("asks every metric of a chart for the same window and places each value by its time", async () => {
    const urls: string[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        urls.push(url);
        // The second answer was computed a moment later, past a step's boundary: one point more.
        const points = urls.length === 1 ? [["2026-12-05T07:00:00Z", 1], ["2026-12-05T07:01:00Z", 2]] : [["2026-12-05T07:00:00Z", 10], ["2026-12-05T07:01:00Z", 20], ["2026-12-05T07:02:00Z", 30]];
        return new Response(JSON.stringify({ metric: "m", step: 60, points }), { status: 200 });
      }),
    );
    try {
      const now = new Date("2026-12-05T07:01:59.900Z");
      const { x, values } = await fetchSeries(["p50_ms", "p95_ms"], "1h", { now });
      const ends = urls.map((url) => new URL(url, "http://x").searchParams.get("end"));
      expect(ends).toEqual([now.toISOString(), now.toISOString()]);
      expect(x).toHaveLength(2);
      expect(values).toEqual([[1, 2], [10, 20]]);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
