import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { LiveFeed, type ConnectionState } from "./liveFeed";

class FakeSocket {
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  close = vi.fn();
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("LiveFeed when the socket cannot even be made", () => {
  it("keeps retrying with backoff instead of throwing (a blank dashboard) or stopping for good", () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    let tries = 0;
    const made: FakeSocket[] = [];
    // new WebSocket throws for a bad address: a ws:// live URL configured for an https page (SecurityError).
    const feed = new LiveFeed("ws://x/ws/metrics/", () => {
      tries += 1;
      if (tries <= 3) throw new DOMException("An insecure WebSocket connection may not be initiated", "SecurityError");
      const socket = new FakeSocket();
      made.push(socket);
      return socket as unknown as WebSocket;
    });
    const states: ConnectionState[] = [];
    feed.onState((state) => states.push(state));
    expect(() => feed.start()).not.toThrow(); // thrown from App's effect, it unmounted the whole dashboard
    expect(states.at(-1)).toBe("reconnecting");
    vi.advanceTimersByTime(400);
    expect(tries).toBe(1); // not at once: the backoff applies
    expect(() => vi.advanceTimersByTime(20000)).not.toThrow(); // thrown from a timer, the feed stopped for good
    expect(tries).toBe(4);
    made[0].onopen?.();
    expect(states.at(-1)).toBe("open");
    feed.stop();
  });
});
