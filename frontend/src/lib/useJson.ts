import { useCallback, useEffect, useRef, useState } from "react";

import { errorState, getJson, refreshDeadline, withDeadline, type ErrorState, type FieldErrors } from "./api";

/** A failure that says nothing about the data already shown: the server busy or restarting, the network. */
function passing(error: ErrorState): boolean {
  return error.code === null || error.code === 429 || error.code >= 500;
}

export type Loadable<T> =
  | { status: "loading" }
  | { status: "ready"; data: T; /** A refresh failed for a passing reason: the data shown is older. */ refreshError?: ErrorState }
  | { status: "error"; message: string; code: number | null; fields?: FieldErrors };

const LOADING = { status: "loading" } as const;

/**
 * GET a URL as JSON whenever it changes (null: nothing to load), optionally again every
 * `refreshMs`. A refresh keeps the data on screen while it loads; a newer URL aborts the older request
 * and reports loading until its own answer arrives (never the older URL's data under the new one).
 */
export function useJson<T>(
  url: string | null,
  { refreshMs = 0, load = getJson<T> }: { refreshMs?: number; load?: typeof getJson<T> } = {},
): Loadable<T> & { reload: () => void } {
  // The URL each answer belongs to: the state of an older URL is never shown for the current one.
  const [answer, setAnswer] = useState<{ url: string | null; state: Loadable<T> }>({ url: null, state: LOADING });
  const [generation, setGeneration] = useState(0);
  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  // The request on its way, if any: a refresh tick skips while there is one. Each tick aborted it and sent
  // another, so on a server slower than the refresh (5 s on a running benchmark) no answer ever arrived. It
  // is given up at the request deadline, whatever `load` does, so one that never answers does not end refreshing.
  const pending = useRef<AbortController | null>(null);

  useEffect(() => {
    if (url === null) return;
    const controller = new AbortController();
    pending.current = controller;
    const settled = () => {
      if (pending.current === controller) pending.current = null;
    };
    const timeoutMs = refreshDeadline(refreshMs);
    withDeadline((signal) => load(url, signal, timeoutMs), controller.signal, timeoutMs)
      .then((data) => {
        settled();
        if (!controller.signal.aborted) setAnswer({ url, state: { status: "ready", data } });
      })
      .catch((error: unknown) => {
        settled();
        if (controller.signal.aborted) return;
        const failure = errorState(error);
        // A refresh that failed for a passing reason keeps what was loaded on screen, with the failure;
        // it replaced the whole page with an error before. A 4xx (signed out, permission revoked, gone) does not.
        setAnswer((previous) =>
          previous.url === url && previous.state.status === "ready" && passing(failure)
            ? { url, state: { status: "ready", data: previous.state.data, refreshError: failure } }
            : { url, state: { status: "error", ...failure } },
        );
      });
    return () => {
      settled();
      controller.abort();
    };
    // refreshMs only sets the next request's deadline: a page turning its refresh off (a finished run) loads nothing again.
  }, [url, generation, load]);

  useEffect(() => {
    if (!refreshMs) return;
    const timer = window.setInterval(() => {
      if (!pending.current) reload();
    }, refreshMs);
    return () => window.clearInterval(timer);
  }, [refreshMs, reload]);

  const state = url !== null && answer.url === url ? answer.state : LOADING;
  return { ...state, reload };
}
