import { createContext, useContext, useEffect, useState } from "react";

import type { ConnectionState, LiveFeed, LiveMessage } from "./liveFeed";

export const LiveFeedContext = createContext<LiveFeed | null>(null);

export function useConnectionState(): ConnectionState {
  const feed = useContext(LiveFeedContext);
  const [state, setState] = useState<ConnectionState>(feed?.state ?? "connecting");
  useEffect(() => feed?.onState(setState), [feed]);
  return state;
}

/** The latest message of a given type, or null until one arrives. */
export function useLatestMessage(type: string): LiveMessage | null {
  const feed = useContext(LiveFeedContext);
  const [message, setMessage] = useState<LiveMessage | null>(null);
  useEffect(
    () =>
      feed?.onMessage((incoming) => {
        if (incoming.type === type) setMessage(incoming);
      }),
    [feed, type],
  );
  return message;
}
