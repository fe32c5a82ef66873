import { useEffect } from "react";

export const SITE_TITLE = "Control plane · Dashboard";

/**
 * The tab's title names the page ("Scaling · Control plane · Dashboard"): every page had the same title, so
 * tabs, history and a screen reader's announcement of a route change could not tell them apart.
 */
export function usePageTitle(page: string | null): void {
  useEffect(() => {
    document.title = page ? `${page} · ${SITE_TITLE}` : SITE_TITLE;
  }, [page]);
}
