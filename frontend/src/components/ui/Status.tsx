import type { Loadable } from "../../lib/useJson";

/** What a page shows while its data loads or when it could not be loaded (403s say which permission). */
export function LoadStatus({ state, what }: { state: Loadable<unknown>; what: string }) {
  if (state.status === "loading") return <p className="muted">Loading {what}…</p>;
  if (state.status === "error") {
    const hint = state.code === 403 ? " Your account lacks the permission for it; ask an administrator." : "";
    return (
      <p role="alert" className="error">
        Could not load {what}: {state.message}.{hint}
      </p>
    );
  }
  return null;
}
