import { useState } from "react";

/** How often, at most, the Overview's live figures are read out to a screen reader. */
export const ANNOUNCE_EVERY_MS = 60_000;

export interface Announced {
  text: string;
  at: number;
}

/**
 * What a polite live region should hold now: the new text once `everyMs` have passed since the last one
 * changed, else the last one. The figures change every second; a region that followed them had a screen
 * reader read the table out without end (and, silent, it told a blind user nothing at all).
 */
export function throttledText(last: Announced | null, text: string, now: number, everyMs: number = ANNOUNCE_EVERY_MS): Announced {
  if (last === null) return { text, at: now };
  if (text === last.text || now - last.at < everyMs) return last;
  return { text, at: now };
}

/** `text`, changed at most once every `everyMs` (the first value at once): for an aria-live region. */
export function useThrottledText(text: string, now: number, everyMs: number = ANNOUNCE_EVERY_MS): string {
  const [shown, setShown] = useState<Announced | null>(null);
  const next = throttledText(shown, text, now, everyMs);
  if (next !== shown) setShown(next); // set while rendering: React renders again at once, before painting
  return next.text;
}
