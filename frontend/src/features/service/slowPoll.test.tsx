import { act, cleanup, render, renderHook, screen, waitFor } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("../../components/ui/Chart", () => ({
  Chart: ({ title, series }: { title: string; series: { label: string; values: unknown[] }[] }) => (
    <figure data-testid="chart">
      {title}: {series.map((s) => `${s.label}=${s.values.join(",")}`).join(" ")}
    </figure>
  ),
}));

import ServicePage from "../../app/routes/ServicePage";
import { useSeries } from "./useSeries";

afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

/** A promise and the function that settles it. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

describe("a poll against a slow API", () => {
  it("useSeries asks again only once its last answer came, so an older answer never replaces a newer one", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const slow = deferred<{ x: number[]; values: (number | null)[][] }>();
    const load = vi
      .fn()
      .mockReturnValueOnce(slow.promise) // the server takes more than a minute
      .mockResolvedValue({ x: [1, 2], values: [[10, 12]] });
    const { result } = renderHook(() => useSeries(["cache_hit_rate_pct"], "24h", { refreshMs: 60000, load }));
    await act(async () => vi.advanceTimersByTimeAsync(125000));
    // Every tick asked again while the first was unanswered: a slow server was sent more and more.
    expect(load).toHaveBeenCalledTimes(1);
    await act(async () => slow.resolve({ x: [1], values: [[10]] }));
    expect(result.current.data?.x).toEqual([1]);
    await act(async () => vi.advanceTimersByTimeAsync(60000));
    await waitFor(() => expect(result.current.data?.x).toEqual([1, 2]));
    expect(load).toHaveBeenCalledTimes(2);
  });

  it("the service page does not stack its panels' requests on a server slower than its refresh", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const waiting: ((response: Response) => void)[] = [];
    const fetch = vi.fn((url: string) => {
      if (url.startsWith("/api/v1/services/")) return Promise.resolve(new Response(JSON.stringify({ slug: "api", name: "API" })));
      return new Promise<Response>((resolve) => waiting.push(resolve)); // every series: slower than 15 s
    });
    vi.stubGlobal("fetch", fetch);
    render(
      <MemoryRouter initialEntries={["/services/api"]}>
        <Routes>
          <Route path="/services/:slug" element={<ServicePage />} />
        </Routes>
      </MemoryRouter>,
    );
    await screen.findByRole("heading", { level: 1, name: "API" });
    await waitFor(() => expect(waiting.length).toBe(8)); // 3 + 1 + 1 + 1 + 2 metrics
    await act(async () => vi.advanceTimersByTimeAsync(46000)); // three refreshes due
    expect(waiting.length).toBe(8);
    const point = (value: number) => new Response(JSON.stringify({ metric: "m", step: 60, points: [["2026-11-27T12:00:00Z", value]] }));
    await act(async () => waiting.splice(0).forEach((resolve) => resolve(point(5))));
    await waitFor(() => expect(screen.getAllByTestId("chart")).toHaveLength(5));
    await act(async () => vi.advanceTimersByTimeAsync(15000));
    await waitFor(() => expect(waiting.length).toBe(8)); // the next refresh, once the last one answered
  });

  it("the service page gives up a series request that never answers, says so in its panel, and refreshes again", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const asked: string[] = [];
    const fetch = vi.fn((url: string) => {
      if (url.startsWith("/api/v1/services/")) return Promise.resolve(new Response(JSON.stringify({ slug: "api", name: "API" })));
      const metric = new URL(url, "http://x").searchParams.get("metric") ?? "";
      asked.push(metric);
      // The throughput series never answers (a proxy holding the connection open); fetch has no deadline of its own.
      if (metric === "rps") return new Promise<Response>(() => {});
      return Promise.resolve(new Response(JSON.stringify({ metric, step: 60, points: [["2026-11-27T12:00:00Z", 1]] })));
    });
    vi.stubGlobal("fetch", fetch);
    render(
      <MemoryRouter initialEntries={["/services/api"]}>
        <Routes>
          <Route path="/services/:slug" element={<ServicePage />} />
        </Routes>
      </MemoryRouter>,
    );
    await screen.findByRole("heading", { level: 1, name: "API" });
    await waitFor(() => expect(asked).toHaveLength(8));
    await act(async () => vi.advanceTimersByTimeAsync(59000)); // merely slow so far: the ticks are skipped
    expect(asked).toHaveLength(8);
    expect(screen.getByTestId("panel-1").textContent).toBe("Loading throughput…");
    await act(async () => vi.advanceTimersByTimeAsync(2000));
    // The round never ended: the panel said "Loading…" for good and no panel was refreshed again.
    expect(screen.getByTestId("panel-1").textContent).toBe("Could not load throughput: The server did not answer within 60 s.");
    expect(screen.getAllByTestId("chart")).toHaveLength(4);
    await act(async () => vi.advanceTimersByTimeAsync(15000));
    expect(asked).toHaveLength(16); // the next round, by the next tick
  });
});
