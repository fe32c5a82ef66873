import type { ConnectionState } from "../../lib/liveFeed";

const LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  forbidden: "Not allowed",
};

export function ConnectionBadge({ state, lastSeen }: { state: ConnectionState; lastSeen?: string | null }) {
  return (
    <span className={`badge badge-${state}`} role="status" aria-live="polite">
      <span className="dot" aria-hidden="true" />
      {LABELS[state]}
      {state === "open" && lastSeen ? <span className="muted"> · {new Date(lastSeen).toLocaleTimeString()}</span> : null}
    </span>
  );
}
