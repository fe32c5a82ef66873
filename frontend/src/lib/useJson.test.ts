import { act, renderHook, waitFor } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { ApiError } from "./api";
import { useJson } from "./useJson";

describe("useJson", () => {
  it("loads, keeps the data on screen while refreshing, and reports errors with their status", async () => {
    let answer: Promise<unknown> = Promise.resolve({ n: 1 });
    const load = vi.fn(() => answer) as never;
    const { result } = renderHook(() => useJson<{ n: number }>("/api/x", { load }));
    expect(result.current.status).toBe("loading");
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { n: 1 } }));

    answer = new Promise(() => {}); // a refresh still in flight
    act(() => result.current.reload());
    expect(result.current).toMatchObject({ status: "ready", data: { n: 1 } });

    answer = Promise.reject(new ApiError(403, "Forbidden"));
    act(() => result.current.reload());
    await waitFor(() => expect(result.current).toMatchObject({ status: "error", message: "Forbidden", code: 403 }));
  });

  it("aborts the older request when the URL changes, and loads nothing for a null URL", async () => {
    const signals: AbortSignal[] = [];
    const load = vi.fn((url: string, signal?: AbortSignal) => {
      signals.push(signal!);
      return Promise.resolve({ url });
    }) as never;
    const { result, rerender } = renderHook(({ url }) => useJson<{ url: string }>(url, { load }), {
      initialProps: { url: "/a" as string | null },
    });
    rerender({ url: "/b" });
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { url: "/b" } }));
    expect(signals[0].aborted).toBe(true);
    rerender({ url: null });
    expect(load).toHaveBeenCalledTimes(2);
  });
});
