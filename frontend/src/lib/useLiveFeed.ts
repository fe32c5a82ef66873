import { createContext, useContext, useEffect, useState } from "react";

import type { ConnectionState, LiveFeed, LiveMessage } from "./liveFeed";

export const LiveFeedContext = createContext<LiveFeed | null>(null);

export function useConnectionState(): ConnectionState {
  const feed = useContext(LiveFeedContext);
  const [state, setState] = useState<ConnectionState>(feed?.state ?? "connecting");
  useEffect(() => feed?.onState(setState), [feed]);
  return state;
}

/** The latest message of a given type (the feed's last one when the page opens), or null until one arrives. */
export function useLatestMessage(type: string): LiveMessage | null {
  const feed = useContext(LiveFeedContext);
  // A page opened again started from nothing, and the Overview showed the snapshot the page was served
  // with, however old, until the next frame.
  const [message, setMessage] = useState<LiveMessage | null>(() => feed?.latest(type) ?? null);
  useEffect(
    () =>
      feed?.onMessage((incoming) => {
        if (incoming.type === type) setMessage(incoming);
      }),
    [feed, type],
  );
  return message;
}
