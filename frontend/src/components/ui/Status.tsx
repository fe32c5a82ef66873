import type { Loadable } from "../../lib/useJson";

/** A message as a sentence: a period only where it has no closing punctuation of its own. */
export function sentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?…]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** The admin's sign-in, back to this page afterwards. */
export function signInUrl(location: Pick<Location, "pathname" | "search"> = window.location): string {
  return `/admin/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
}

/** Why something could not be loaded: a 401 links to the sign-in, a 403 says a permission is missing. */
export function LoadError({ what, message, code }: { what: string; message: string; code: number | null }) {
  return (
    <p role="alert" className="error">
      Could not load {what}: {sentence(message)}
      {code === 401 ? (
        <>
          {" "}
          <a href={signInUrl()}>Sign in again</a> to see it.
        </>
      ) : null}
      {code === 403 ? " Your account lacks the permission for it; ask an administrator." : null}
    </p>
  );
}

/** What a page shows while its data loads or when it could not be loaded. */
export function LoadStatus({ state, what }: { state: Loadable<unknown>; what: string }) {
  if (state.status === "loading") return <p className="muted">Loading {what}…</p>;
  if (state.status === "error") return <LoadError what={what} message={state.message} code={state.code} />;
  return null;
}
