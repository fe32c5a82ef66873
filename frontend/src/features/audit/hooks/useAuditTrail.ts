import { useCallback, useEffect, useRef, useState } from "react";

import { ApiError, errorState, type ErrorState } from "../../../lib/api";
import { fetchAuditPage, type AuditEvent } from "../api/audit";

export interface AuditTrailState {
  events: AuditEvent[];
  /** The first page of this query is still on its way. */
  loading: boolean;
  /** More pages exist, fetched as the list nears its end. */
  hasMore: boolean;
  error: ErrorState | null;
  /** Seconds to wait because the rate limit refused us, or null. */
  limitedFor: number | null;
  onRange: (first: number, last: number) => void;
}

const NO_EVENTS: AuditEvent[] = [];

interface Query {
  controller: AbortController;
  retry?: number;
}

/**
 * The audit events of one query URL, a keyset page at a time as the list is scrolled. A new URL aborts
 * every request of the older one and ignores whatever of it still arrives, so neither a late first
 * page nor a page fetched by scrolling lands in the new results; a 429 waits out its Retry-After.
 */
export function useAuditTrail(url: string, { load = fetchAuditPage }: { load?: typeof fetchAuditPage } = {}): AuditTrailState {
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<AuditTrailState["error"]>(null);
  const [limitedFor, setLimitedFor] = useState<number | null>(null);
  // The query the state above is of: until the effect had reset it for a new URL, the render with the new
  // filter returned the older filter's events, not loading, as if they matched.
  const [shownFor, setShownFor] = useState(url);
  const current = useRef<Query | null>(null);
  const busy = useRef(false); // one page at a time

  const fetchPage = useCallback(
    (pageUrl: string, replace: boolean) => {
      const mine = current.current;
      if (!mine) return;
      busy.current = true;
      load(pageUrl, mine.controller.signal)
        .then((page) => {
          if (mine !== current.current) return;
          busy.current = false;
          setEvents((previous) => (replace ? page.results : [...previous, ...page.results]));
          setNext(page.next);
          setError(null);
          setLimitedFor(null);
          setLoading(false);
        })
        .catch((failure: Error & { status?: number }) => {
          if (mine !== current.current || mine.controller.signal.aborted) return;
          if (failure instanceof ApiError && failure.status === 429) {
            const wait = failure.retryAfter ?? 5;
            setLimitedFor(wait);
            mine.retry = window.setTimeout(() => fetchPage(pageUrl, replace), wait * 1000);
            return;
          }
          busy.current = false;
          setError(errorState(failure));
          setLoading(false);
        });
    },
    [load],
  );

  useEffect(() => {
    const mine: Query = { controller: new AbortController() };
    current.current = mine;
    busy.current = false;
    setEvents([]);
    setNext(null);
    setError(null);
    setLimitedFor(null);
    setLoading(true);
    setShownFor(url);
    fetchPage(url, true);
    return () => {
      mine.controller.abort();
      window.clearTimeout(mine.retry);
      if (current.current === mine) current.current = null;
    };
  }, [url, fetchPage]);

  const onRange = useCallback(
    (_first: number, last: number) => {
      if (next && !busy.current && last >= events.length - 50) fetchPage(next, false);
    },
    [next, events.length, fetchPage],
  );

  if (shownFor !== url) return { events: NO_EVENTS, loading: true, hasMore: false, error: null, limitedFor: null, onRange };
  return { events, loading, hasMore: next !== null, error, limitedFor, onRange };
}
