import { useCallback, useEffect, useRef, useState } from "react";

import { ApiError, errorState, type ErrorState } from "../../../lib/api";
import { fetchPatientWindow, type Patient } from "../api/patients";

export const BLOCK = 100;
/**
 * Blocks kept in memory, the farthest from the one just loaded dropped first (fetched again, and audited
 * again, if scrolled back to). Dragging through 100,000 patients kept every row, names and birth dates,
 * in the tab for as long as it stayed open.
 */
export const MAX_BLOCKS = 20;

const NO_ROWS: Map<number, Patient> = new Map();

export interface PatientWindowState {
  count: number | null;
  rows: Map<number, Patient>;
  error: ErrorState | null;
  /** Seconds to wait because the rate limit refused us, or null. */
  limitedFor: number | null;
  onRange: (first: number, last: number) => void;
}

/**
 * Rows of a patient search, fetched by block of 100 for the part of the list on screen. A fast scroll
 * fetches only where it settles (a short debounce); a 429 waits out its Retry-After and tries again.
 */
export function usePatientWindow(
  name: string,
  { load = fetchPatientWindow, debounceMs = 120 }: { load?: typeof fetchPatientWindow; debounceMs?: number } = {},
): PatientWindowState {
  const [count, setCount] = useState<number | null>(null);
  const [rows, setRows] = useState<Map<number, Patient>>(new Map());
  const [error, setError] = useState<PatientWindowState["error"]>(null);
  const [limitedFor, setLimitedFor] = useState<number | null>(null);
  // The search the state above is of: until the effect has reset it for a new one, the render with the new
  // name returned the older search's rows and count, other patients shown as if they matched.
  const [shownFor, setShownFor] = useState(name);
  const requested = useRef(new Set<number>());
  const loaded = useRef(new Set<number>());
  const timer = useRef<number | undefined>(undefined);
  const generation = useRef(0);
  // What one search has waiting (requests on their way, 429 retries): aborted and cleared when the search
  // changes or the page is left. A retry of an older search fired under the new one before, and its rows
  // (other patients) and count landed in the new list; after the page was left it still fetched (and the
  // server audited) patient rows no one was looking at.
  const pending = useRef<{ controller: AbortController; retries: Set<number> }>({ controller: new AbortController(), retries: new Set() });

  const fetchBlock = useCallback(
    (block: number) => {
      if (requested.current.has(block)) return;
      requested.current.add(block);
      const mine = generation.current;
      const { controller, retries } = pending.current;
      load(name, block * BLOCK, BLOCK, controller.signal)
        .then((page) => {
          if (mine !== generation.current) return;
          setCount(page.count);
          setLimitedFor(null);
          loaded.current.add(block);
          const kept = new Set(
            [...loaded.current].sort((a, b) => Math.abs(a - block) - Math.abs(b - block)).slice(0, MAX_BLOCKS),
          );
          for (const old of loaded.current) {
            if (!kept.has(old)) requested.current.delete(old);
          }
          loaded.current = kept;
          setRows((previous) => {
            const next = new Map<number, Patient>();
            previous.forEach((patient, index) => {
              if (kept.has(Math.floor(index / BLOCK))) next.set(index, patient);
            });
            page.results.forEach((patient, i) => next.set(page.offset + i, patient));
            return next;
          });
        })
        .catch((failure: Error & { status?: number }) => {
          if (mine !== generation.current || controller.signal.aborted) return;
          requested.current.delete(block);
          if (failure instanceof ApiError && failure.status === 429) {
            const wait = failure.retryAfter ?? 5;
            setLimitedFor(wait);
            const retry = window.setTimeout(() => {
              retries.delete(retry);
              if (mine === generation.current) fetchBlock(block);
            }, wait * 1000);
            retries.add(retry);
          } else {
            setError(errorState(failure));
          }
        });
    },
    [load, name],
  );

  useEffect(() => {
    generation.current += 1;
    const mine = { controller: new AbortController(), retries: new Set<number>() };
    pending.current = mine;
    requested.current = new Set();
    loaded.current = new Set();
    setRows(new Map());
    setCount(null);
    setError(null);
    setLimitedFor(null);
    setShownFor(name);
    fetchBlock(0);
    return () => {
      generation.current += 1; // whatever of this search still arrives is dropped
      mine.controller.abort();
      mine.retries.forEach((retry) => window.clearTimeout(retry));
      window.clearTimeout(timer.current); // a scroll's debounce would fetch for this search
    };
  }, [fetchBlock, name]);

  const onRange = useCallback(
    (first: number, last: number) => {
      window.clearTimeout(timer.current);
      timer.current = window.setTimeout(() => {
        for (let block = Math.floor(first / BLOCK); block <= Math.floor(last / BLOCK); block += 1) fetchBlock(block);
      }, debounceMs);
    },
    [fetchBlock, debounceMs],
  );

  if (shownFor !== name) return { count: null, rows: NO_ROWS, error: null, limitedFor: null, onRange };
  return { count, rows, error, limitedFor, onRange };
}
