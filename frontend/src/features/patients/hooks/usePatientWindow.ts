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
  const requested = useRef(new Set<number>());
  const loaded = useRef(new Set<number>());
  const timer = useRef<number | undefined>(undefined);
  const generation = useRef(0);

  const fetchBlock = useCallback(
    (block: number) => {
      if (requested.current.has(block)) return;
      requested.current.add(block);
      const mine = generation.current;
      load(name, block * BLOCK, BLOCK)
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
          if (mine !== generation.current) return;
          requested.current.delete(block);
          if (failure instanceof ApiError && failure.status === 429) {
            const wait = failure.retryAfter ?? 5;
            setLimitedFor(wait);
            window.setTimeout(() => fetchBlock(block), wait * 1000);
          } else {
            setError(errorState(failure));
          }
        });
    },
    [load, name],
  );

  useEffect(() => {
    generation.current += 1;
    requested.current = new Set();
    loaded.current = new Set();
    setRows(new Map());
    setCount(null);
    setError(null);
    fetchBlock(0);
  }, [fetchBlock]);

  const onRange = useCallback(
    (first: number, last: number) => {
      window.clearTimeout(timer.current);
      timer.current = window.setTimeout(() => {
        for (let block = Math.floor(first / BLOCK); block <= Math.floor(last / BLOCK); block += 1) fetchBlock(block);
      }, debounceMs);
    },
    [fetchBlock, debounceMs],
  );

  return { count, rows, error, limitedFor, onRange };
}
