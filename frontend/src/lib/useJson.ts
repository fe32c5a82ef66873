import { useCallback, useEffect, useState } from "react";

import { getJson } from "./api";

export type Loadable<T> =
  | { status: "loading" }
  | { status: "ready"; data: T }
  | { status: "error"; message: string; code: number | null };

/**
 * GET a URL as JSON whenever it changes (null: nothing to load), optionally again every
 * `refreshMs`. A refresh keeps the data on screen while it loads; a newer URL aborts the older request.
 */
export function useJson<T>(
  url: string | null,
  { refreshMs = 0, load = getJson<T> }: { refreshMs?: number; load?: typeof getJson<T> } = {},
): Loadable<T> & { reload: () => void } {
  const [state, setState] = useState<Loadable<T>>({ status: "loading" });
  const [generation, setGeneration] = useState(0);
  const reload = useCallback(() => setGeneration((n) => n + 1), []);

  useEffect(() => {
    if (url === null) return;
    const controller = new AbortController();
    load(url, controller.signal)
      .then((data) => setState({ status: "ready", data }))
      .catch((error: Error & { status?: number }) => {
        if (!controller.signal.aborted) setState({ status: "error", message: error.message, code: error.status ?? null });
      });
    return () => controller.abort();
  }, [url, generation, load]);

  useEffect(() => {
    if (!refreshMs) return;
    const timer = window.setInterval(reload, refreshMs);
    return () => window.clearInterval(timer);
  }, [refreshMs, reload]);

  return { ...state, reload };
}
