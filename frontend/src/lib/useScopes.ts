import { useEffect, useState } from "react";

import { getJson, WHOAMI_URL } from "./api";

/**
 * The signed-in user's API scopes, from whoami: null until it answers. A failed whoami gives "unknown": the
 * pages then show their own "permission missing" message, as the API still decides.
 */
export type Scopes = string[] | "unknown" | null;

export function useScopes(load: () => Promise<{ scopes: string[] }> = () => getJson(WHOAMI_URL)): Scopes {
  const [scopes, setScopes] = useState<Scopes>(null);
  useEffect(() => {
    let live = true;
    load().then(
      (answer) => live && setScopes(Array.isArray(answer?.scopes) ? answer.scopes : []),
      () => live && setScopes("unknown"),
    );
    return () => {
      live = false;
    };
  }, [load]);
  return scopes;
}

/** Whether a page needing `scope` is offered: not before whoami answers, and not to a user without it. */
export function offered(scopes: Scopes, scope: string | undefined): boolean | "pending" {
  if (!scope) return true;
  if (scopes === null) return "pending";
  return scopes === "unknown" || scopes.includes(scope);
}
