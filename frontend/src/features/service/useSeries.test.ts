import { act, renderHook, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { ApiError } from "../../lib/api";
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
});
