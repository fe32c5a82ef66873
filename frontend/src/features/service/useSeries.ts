import { useEffect, useState } from "react";

import { errorState, refreshDeadline, withDeadline, type ErrorState } from "../../lib/api";
import { fetchSeries, type RangeName } from "./series";

export interface SeriesState {
  /** The last series that loaded: kept through a failed refresh. */
  data: { x: number[]; values: (number | null)[][] } | null;
  /** The last failure, until a refresh succeeds. */
  error: ErrorState | null;
}

/**
 * Metrics over a range ending now, fetched again every `refreshMs` (the window moves with the clock).
 * The cache and inference pages fetched their 24 h trend once, so it went stale while the tables under it
 * refreshed, and a failure hid the chart without a word.
 */
export function useSeries(metrics: string[], range: RangeName, { refreshMs = 60000, load = fetchSeries } = {}): SeriesState {
  const [state, setState] = useState<SeriesState>({ data: null, error: null });
  const key = metrics.join(",");

  useEffect(() => {
    let live = true;
    // One request at a time: a tick while the last is unanswered is skipped. Each tick asked again before, so a
    // server slower than the refresh was sent more and more, and an older answer arriving last replaced a newer.
    // The request is given up at the deadline, a few refresh periods (a failure like any other, and the next tick
    // asks again): one that never answered stopped every later refresh, the chart silently showing old figures.
    let pending: AbortController | null = null;
    const timeoutMs = refreshDeadline(refreshMs);
    setState({ data: null, error: null });
    const fetchNow = () => {
      if (pending) return;
      const controller = (pending = new AbortController());
      return withDeadline((signal) => load(key.split(","), range, { signal, timeoutMs }), controller.signal, timeoutMs)
        .then(
          (data) => live && setState({ data, error: null }),
          (failure: unknown) => live && setState((previous) => ({ data: previous.data, error: errorState(failure) })),
        )
        .finally(() => {
          if (pending === controller) pending = null;
        });
    };
    void fetchNow();
    const timer = refreshMs ? window.setInterval(fetchNow, refreshMs) : undefined;
    return () => {
      live = false;
      window.clearInterval(timer);
      pending?.abort();
    };
  }, [key, range, refreshMs, load]);

  return state;
}
