import { useEffect, useState } from "react";

/** This browser's clock, read again every `everyMs`: what ages a figure on screen when nothing else re-renders it. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(timer);
  }, [everyMs]);
  return now;
}
