import { clockTime } from "../../lib/format";
import type { ConnectionState } from "../../lib/liveFeed";

const LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  "signed-out": "Signed out",
  forbidden: "Not allowed",
};

/**
 * The live feed's state, announced when it changes. The time of the last heartbeat sits outside the live
 * region: inside it, a screen reader read "Live · 1:24:30 AM" out at every heartbeat, on every page.
 */
export function ConnectionBadge({ state, lastSeen }: { state: ConnectionState; lastSeen?: string | null }) {
  return (
    <span className={`badge badge-${state}`}>
      <span className="dot" aria-hidden="true" />
      <span role="status" aria-live="polite">
        {LABELS[state]}
      </span>
      {state === "open" && lastSeen ? <span className="muted"> · {clockTime(Date.parse(lastSeen))}</span> : null}
    </span>
  );
}
