import { act, renderHook, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { ApiError } from "../../../lib/api";
import type { Patient, PatientWindow } from "../api/patients";
import { BLOCK, MAX_BLOCKS, usePatientWindow } from "./usePatientWindow";

const patient = (index: number): Patient => ({
  id: index + 1, identifier_system: "s", mrn: `M${index}`, family_name: `F${index}`, given_name: "G",
  birth_date: "1970-01-01", sex: "female",
});

function fakeServer(total: number) {
  return vi.fn(async (_name: string, offset: number, limit: number): Promise<PatientWindow> => ({
    count: total,
    offset,
    results: Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, i) => patient(offset + i)),
  }));
}

afterEach(() => vi.useRealTimers());

describe("usePatientWindow", () => {
  it("loads the first block and the total, then only the blocks a scroll settles on, once each", async () => {
    const load = fakeServer(100_000);
    const { result } = renderHook(() => usePatientWindow("", { load, debounceMs: 5 }));
    await waitFor(() => expect(result.current.count).toBe(100_000));
    expect(result.current.rows.get(0)?.id).toBe(1);

    act(() => result.current.onRange(20_000, 20_000)); // a fling: superseded before the debounce ends
    act(() => result.current.onRange(99_990, 99_999));
    await waitFor(() => expect(result.current.rows.get(99_999)?.id).toBe(100_000));
    act(() => result.current.onRange(99_990, 99_999));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(load.mock.calls.map(([, offset]) => offset)).toEqual([0, 99_900]);
    expect(result.current.rows.has(20_000)).toBe(false);
    expect(load.mock.calls.every(([, , limit]) => limit === BLOCK)).toBe(true);
  });

  it("keeps a bounded number of blocks in memory, the nearest, and fetches a dropped one again", async () => {
    const load = fakeServer(100_000);
    const { result } = renderHook(() => usePatientWindow("", { load, debounceMs: 1 }));
    await waitFor(() => expect(result.current.count).toBe(100_000));
    for (let block = 1; block < 3 * MAX_BLOCKS; block += 1) {
      act(() => result.current.onRange(block * BLOCK, block * BLOCK + 10)); // dragged down the whole list
      await waitFor(() => expect(result.current.rows.has(block * BLOCK)).toBe(true));
    }
    expect(result.current.rows.size).toBeLessThanOrEqual(MAX_BLOCKS * BLOCK);
    expect(result.current.rows.has((3 * MAX_BLOCKS - 2) * BLOCK)).toBe(true); // where the list is now
    expect(result.current.rows.has(0)).toBe(false); // far behind: let go
    act(() => result.current.onRange(0, 10)); // back to the top: fetched again
    await waitFor(() => expect(result.current.rows.get(0)?.id).toBe(1));
    expect(load.mock.calls.filter(([, offset]) => offset === 0)).toHaveLength(2);
  });

  it("waits out a 429's Retry-After and tries the block again", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const server = fakeServer(500);
    let refused = false;
    const load = vi.fn(async (name: string, offset: number, limit: number) => {
      if (!refused) {
        refused = true;
        throw new ApiError(429, "Too many requests", 2);
      }
      return server(name, offset, limit);
    });
    const { result } = renderHook(() => usePatientWindow("", { load }));
    await waitFor(() => expect(result.current.limitedFor).toBe(2));
    await act(async () => {
      await vi.advanceTimersByTimeAsync(2100);
    });
    await waitFor(() => expect(result.current.count).toBe(500));
    expect(result.current.limitedFor).toBeNull();
    expect(load).toHaveBeenCalledTimes(2);
  });

  it("starts over for a new search", async () => {
    const load = fakeServer(10);
    const { result, rerender } = renderHook(({ name }) => usePatientWindow(name, { load }), { initialProps: { name: "" } });
    await waitFor(() => expect(result.current.count).toBe(10));
    rerender({ name: "smi" });
    await waitFor(() => expect(load).toHaveBeenLastCalledWith("smi", 0, BLOCK, expect.any(AbortSignal)));
  });
});

describe("usePatientWindow, a search changed or the page left while requests wait", () => {
  it("never fetches an older search's block once the search has changed (a 429's retry)", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const server = fakeServer(1000);
    const load = vi.fn(async (name: string, offset: number, limit: number) => {
      if (name === "" && offset === 300) throw new ApiError(429, "Too many requests", 1);
      return server(name, offset, limit);
    });
    const { result, rerender } = renderHook(({ name }) => usePatientWindow(name, { load, debounceMs: 1 }), { initialProps: { name: "" } });
    await waitFor(() => expect(result.current.count).toBe(1000));
    act(() => result.current.onRange(300, 310));
    await waitFor(() => expect(result.current.limitedFor).toBe(1));
    rerender({ name: "smi" }); // typed a name while the whole list's block waited
    await waitFor(() => expect(load.mock.calls.some(([name, offset]) => name === "smi" && offset === 0)).toBe(true));
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1500);
    });
    // The older search's retry fired under the new one: its rows (other patients) landed in the new list.
    expect(load.mock.calls.filter(([name, offset]) => name === "" && offset === 300)).toHaveLength(1);
    expect(result.current.rows.has(300)).toBe(false);
    expect(result.current.limitedFor).toBeNull();
  });

  it("fetches nothing more after the page is left, and aborts what is on its way", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const signals: AbortSignal[] = [];
    const server = fakeServer(1000);
    const load = vi.fn(async (name: string, offset: number, limit: number, signal?: AbortSignal) => {
      if (signal) signals.push(signal);
      if (offset === 300) throw new ApiError(429, "Too many requests", 1);
      if (offset === 500) return new Promise<PatientWindow>(() => undefined); // slow: still on its way
      return server(name, offset, limit);
    });
    const { result, unmount } = renderHook(() => usePatientWindow("", { load, debounceMs: 50 }));
    await waitFor(() => expect(result.current.count).toBe(1000));
    act(() => result.current.onRange(300, 310));
    await waitFor(() => expect(result.current.limitedFor).toBe(1));
    act(() => result.current.onRange(500, 510));
    await waitFor(() => expect(load).toHaveBeenCalledTimes(3));
    act(() => result.current.onRange(700, 710)); // a scroll just before leaving: still in its debounce
    unmount();
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1500);
    });
    // Each of these was a PHI read (audited) for a page no one was looking at.
    expect(load).toHaveBeenCalledTimes(3);
    expect(signals.length).toBe(3);
    expect(signals.every((signal) => signal.aborted)).toBe(true);
  });
});

describe("usePatientWindow, a new search's first render", () => {
  it("never returns the older search's rows or count under the new name", async () => {
    const server = fakeServer(300);
    const load = vi.fn(async (name: string, offset: number, limit: number) =>
      name === "smi" ? new Promise<PatientWindow>(() => undefined) : server(name, offset, limit),
    );
    const seen: { name: string; rows: number; count: number | null }[] = [];
    const { result, rerender } = renderHook(
      ({ name }) => {
        const state = usePatientWindow(name, { load });
        seen.push({ name, rows: state.rows.size, count: state.count });
        return state;
      },
      { initialProps: { name: "" } },
    );
    await waitFor(() => expect(result.current.rows.size).toBe(BLOCK));
    rerender({ name: "smi" });
    await waitFor(() => expect(result.current.count).toBeNull());
    // The render with the new name returned the whole list's first 100 patients as if they matched "smi".
    expect(seen.filter((render) => render.name === "smi" && (render.rows > 0 || render.count !== null))).toEqual([]);
  });
});
