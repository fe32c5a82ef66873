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

describe("LiveFeed against a server that fails just after it accepts", () => {
  function feedAndSockets() {
    const made: FakeSocket[] = [];
    const feed = new LiveFeed("ws://x/ws/metrics/", () => {
      const socket = new FakeSocket();
      made.push(socket);
      return socket as unknown as WebSocket;
    });
    return { feed, made };
  }

  it("backs off though each socket carried a frame before it closed (no reconnect storm)", () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { feed, made } = feedAndSockets();
    feed.start();
    // Each socket: accepted, its first heartbeat, then the consumer fails at its first snapshot (1011).
    let handled = 0;
    for (let elapsed = 0; elapsed < 20000; elapsed += 50) {
      if (made.length > handled) {
        const socket = made[handled];
        handled += 1;
        socket.onopen?.();
        socket.onmessage?.({ data: JSON.stringify({ type: "heartbeat", seq: 1 }) });
        vi.advanceTimersByTime(300);
        socket.onclose?.({ code: 1011 });
      }
      vi.advanceTimersByTime(50);
    }
    // The first frame reset the backoff: every dashboard reconnected about once a second for as long as it
    // lasted (25 sockets in 20 s here); 0.5, 1, 2, 4, 8 s apart is 6 or so.
    expect(made.length).toBeLessThanOrEqual(7);
    feed.stop();
  });

  it("starts its backoff over after a socket that lasted", () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { feed, made } = feedAndSockets();
    feed.start();
    for (let i = 0; i < 5; i += 1) {
      made.at(-1)!.onclose?.({ code: 1006 });
      vi.advanceTimersByTime(15000);
    }
    const socket = made.at(-1)!;
    socket.onopen?.();
    for (let second = 0; second < 30; second += 1) {
      socket.onmessage?.({ data: JSON.stringify({ type: "heartbeat", seq: second }) });
      vi.advanceTimersByTime(1000);
    }
    socket.onclose?.({ code: 1012 }); // the live process restarts after a good half minute
    const before = made.length;
    vi.advanceTimersByTime(500);
    expect(made.length).toBe(before + 1);
    feed.stop();
  });
});
