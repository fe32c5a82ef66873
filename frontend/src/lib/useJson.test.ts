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

  it("keeps the data through a refresh that failed for a passing reason (503, network), saying so", async () => {
    let answer: Promise<unknown> = Promise.resolve({ n: 1 });
    const load = vi.fn(() => answer) as never;
    const { result } = renderHook(() => useJson<{ n: number }>("/api/x", { load }));
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { n: 1 } }));

    answer = Promise.reject(new ApiError(503, "The database is unavailable"));
    act(() => result.current.reload());
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { n: 1 }, refreshError: { code: 503 } }));
    answer = Promise.reject(new TypeError("Failed to fetch"));
    act(() => result.current.reload());
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { n: 1 }, refreshError: { code: null } }));

    answer = Promise.resolve({ n: 2 });
    act(() => result.current.reload());
    await waitFor(() => expect(result.current).toMatchObject({ status: "ready", data: { n: 2 } }));
    expect(result.current).not.toHaveProperty("refreshError");
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

  it("reports loading, not the older URL's data, while a new URL's request is in flight", async () => {
    const pending = new Map<string, (value: unknown) => void>();
    // A loader that ignores the abort signal: a late answer for an older URL must still not be shown.
    const load = vi.fn((url: string) => new Promise((resolve) => pending.set(url, resolve))) as never;
    const { result, rerender } = renderHook(({ url }) => useJson<{ patient: number }>(url, { load }), {
      initialProps: { url: "/patients/1/vitals/" },
    });
    await act(async () => pending.get("/patients/1/vitals/")!({ patient: 1 }));
    expect(result.current).toMatchObject({ status: "ready", data: { patient: 1 } });

    rerender({ url: "/patients/2/vitals/" });
    expect(result.current.status).toBe("loading");
    expect("data" in result.current).toBe(false);

    rerender({ url: "/patients/3/vitals/" }); // chosen before patient 2's answer came
    await act(async () => pending.get("/patients/2/vitals/")!({ patient: 2 })); // late: not shown
    expect(result.current.status).toBe("loading");
    await act(async () => pending.get("/patients/3/vitals/")!({ patient: 3 }));
    expect(result.current).toMatchObject({ status: "ready", data: { patient: 3 } });
  });

  it("does not show an older URL's error under the new URL", async () => {
    let fail = true;
    const load = vi.fn(() => (fail ? Promise.reject(new ApiError(403, "Forbidden")) : new Promise(() => {}))) as never;
    const { result, rerender } = renderHook(({ url }) => useJson(url, { load }), { initialProps: { url: "/a" } });
    await waitFor(() => expect(result.current).toMatchObject({ status: "error", code: 403 }));
    fail = false;
    rerender({ url: "/b" });
    expect(result.current.status).toBe("loading");
  });
});
