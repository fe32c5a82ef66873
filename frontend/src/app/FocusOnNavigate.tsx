import { useEffect, useRef } from "react";
import { useLocation } from "react-router";

/**
 * After a route change, focus moves to the page's main region (as a new page load would put it at the
 * top): it stayed on the clicked link, so a keyboard or screen reader user heard nothing of the new page
 * and had to tab through the header again to reach it. The first render leaves focus alone.
 */
export function FocusOnNavigate({ targetId }: { targetId: string }) {
  const { pathname } = useLocation();
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById(targetId)?.focus({ preventScroll: false });
  }, [pathname, targetId]);
  return null;
}
