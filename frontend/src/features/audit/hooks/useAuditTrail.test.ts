import { act, renderHook, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { ApiError } from "../../../lib/api";
import type { AuditEvent, AuditPage } from "../api/audit";
import { useAuditTrail } from "./useAuditTrail";

const event = (id: number, resourceType: string): AuditEvent => ({
  id, recorded_at: "2026-11-27T12:00:00Z", actor_type: "user", actor_name: "admin", action: "read",
  resource_type: resourceType, resource_id: String(id), outcome: "success", purpose_of_use: "TREAT",
  result_count: null, served_from_cache: false, request_id: "r",
});

/** A server whose answers the test releases one by one, in any order. */
function controlledServer() {
  const calls: { url: string; signal: AbortSignal; answer: (page: AuditPage) => Promise<void>; fail: (error: Error) => Promise<void> }[] = [];
  const load = vi.fn(
    (url: string, signal?: AbortSignal) =>
      new Promise<AuditPage>((resolve, reject) => {
        calls.push({
          url,
          signal: signal!,
          answer: async (page) => act(async () => resolve(page)),
          fail: async (error) => act(async () => reject(error)),
        });
      }),
  );
  const call = (url: string) => calls.filter((c) => c.url === url).at(-1)!;
  return { load, calls, call };
}

afterEach(() => vi.useRealTimers());

describe("useAuditTrail", () => {
  it("ignores a late answer of an older filter and aborts its request", async () => {
    const server = controlledServer();
    const { result, rerender } = renderHook(({ url }) => useAuditTrail(url, { load: server.load }), { initialProps: { url: "/audit?t=Pat" } });
    expect(result.current.loading).toBe(true);
    rerender({ url: "/audit?t=Patient" });
    expect(server.call("/audit?t=Pat").signal.aborted).toBe(true);

    await server.call("/audit?t=Patient").answer({ next: null, results: [event(2, "Patient")] });
    await server.call("/audit?t=Pat").answer({ next: null, results: [event(1, "Pat")] }); // out of order
    expect(result.current.events.map((e) => e.id)).toEqual([2]);
    expect(result.current.loading).toBe(false);
  });

  it("never appends a page fetched by scrolling to a newer filter's results", async () => {
    const server = controlledServer();
    const { result, rerender } = renderHook(({ url }) => useAuditTrail(url, { load: server.load }), { initialProps: { url: "/audit" } });
    await server.call("/audit").answer({ next: "/audit?cursor=2", results: [event(1, "Observation")] });
    expect(result.current.hasMore).toBe(true);

    act(() => result.current.onRange(0, 0)); // near the end of the list: the next page is asked for
    act(() => result.current.onRange(0, 0)); // not twice
    expect(server.calls.filter((c) => c.url === "/audit?cursor=2")).toHaveLength(1);

    rerender({ url: "/audit?t=Patient" });
    expect(result.current.events).toEqual([]); // no older results under the new filter
    await server.call("/audit?t=Patient").answer({ next: null, results: [event(9, "Patient")] });
    await server.call("/audit?cursor=2").answer({ next: null, results: [event(2, "Observation")] });
    expect(result.current.events.map((e) => e.id)).toEqual([9]);
  });

  it("appends the next page of the same filter", async () => {
    const server = controlledServer();
    const { result } = renderHook(() => useAuditTrail("/audit", { load: server.load }));
    await server.call("/audit").answer({ next: "/audit?cursor=2", results: [event(1, "Patient")] });
    act(() => result.current.onRange(0, 0));
    await server.call("/audit?cursor=2").answer({ next: null, results: [event(2, "Patient")] });
    expect(result.current.events.map((e) => e.id)).toEqual([1, 2]);
    expect(result.current.hasMore).toBe(false);
  });

  it("waits out a 429's Retry-After and asks again", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const server = controlledServer();
    const { result } = renderHook(() => useAuditTrail("/audit", { load: server.load }));
    await server.call("/audit").fail(new ApiError(429, "Request was throttled.", 2));
    expect(result.current.limitedFor).toBe(2);
    expect(result.current.error).toBeNull();
    await act(async () => {
      await vi.advanceTimersByTimeAsync(2100);
    });
    expect(server.calls).toHaveLength(2);
    await server.call("/audit").answer({ next: null, results: [event(1, "Patient")] });
    expect(result.current.limitedFor).toBeNull();
    expect(result.current.events).toHaveLength(1);
  });

  it("does not retry a query that was replaced while it waited out a 429", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const server = controlledServer();
    const { rerender } = renderHook(({ url }) => useAuditTrail(url, { load: server.load }), { initialProps: { url: "/audit?t=P" } });
    await server.call("/audit?t=P").fail(new ApiError(429, "Request was throttled.", 2));
    rerender({ url: "/audit?t=Patient" });
    await act(async () => {
      await vi.advanceTimersByTimeAsync(2100);
    });
    expect(server.calls.map((c) => c.url)).toEqual(["/audit?t=P", "/audit?t=Patient"]);
  });

  it("reports an error with its status", async () => {
    const server = controlledServer();
    const { result } = renderHook(() => useAuditTrail("/audit", { load: server.load }));
    await server.call("/audit").fail(new ApiError(403, "You do not have permission to perform this action."));
    await waitFor(() => expect(result.current.error).toEqual({ message: "You do not have permission to perform this action.", code: 403 }));
  });
});

describe("useAuditTrail, a new filter's first render", () => {
  it("never returns the older filter's events under the new one", async () => {
    const server = controlledServer();
    const seen: { url: string; events: number; loading: boolean }[] = [];
    const { result, rerender } = renderHook(
      ({ url }) => {
        const state = useAuditTrail(url, { load: server.load });
        seen.push({ url, events: state.events.length, loading: state.loading });
        return state;
      },
      { initialProps: { url: "/audit?t=Patient" } },
    );
    await server.call("/audit?t=Patient").answer({ next: null, results: [event(1, "Patient"), event(2, "Patient")] });
    expect(result.current.events).toHaveLength(2);
    rerender({ url: "/audit?t=Observation" });
    await waitFor(() => expect(result.current.loading).toBe(true));
    // The render with the new filter returned the Patient events, not loading, as if they were Observations.
    expect(seen.filter((render) => render.url === "/audit?t=Observation" && (render.events > 0 || !render.loading))).toEqual([]);
  });
});
