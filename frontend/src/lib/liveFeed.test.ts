import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { backoffDelay, LiveFeed, STABLE_MS, type ConnectionState } from "./liveFeed";

class FakeSocket {
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  close = vi.fn();
}

describe("backoffDelay", () => {
  it("grows exponentially and stays under the cap", () => {
    const fixed = () => 1;
    expect(backoffDelay(0, 500, 15000, fixed)).toBe(500);
    expect(backoffDelay(3, 500, 15000, fixed)).toBe(4000);
    expect(backoffDelay(20, 500, 15000, fixed)).toBe(15000);
    expect(backoffDelay(3, 500, 15000, () => 0)).toBe(2000);
  });
});

describe("LiveFeed", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("delivers messages, reconnects after a drop and stops on a forbidden close", () => {
    const sockets: FakeSocket[] = [];
    const feed = new LiveFeed("ws://x/ws/metrics/", () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket as unknown as WebSocket;
    });
    const states: ConnectionState[] = [];
    const messages: unknown[] = [];
    feed.onState((state) => states.push(state));
    feed.onMessage((message) => messages.push(message));
    feed.start();

    sockets[0].onopen?.();
    sockets[0].onmessage?.({ data: JSON.stringify({ type: "heartbeat", seq: 1 }) });
    sockets[0].onmessage?.({ data: "not json" });
    expect(messages).toEqual([{ type: "heartbeat", seq: 1, receivedAt: Date.now() }]);

    sockets[0].onclose?.({ code: 1006 });
    expect(states.at(-1)).toBe("reconnecting");
    vi.advanceTimersByTime(15000);
    expect(sockets).toHaveLength(2);

    sockets[1].onopen?.();
    expect(states.at(-1)).toBe("open");
    sockets[1].onclose?.({ code: 4403 });
    expect(states.at(-1)).toBe("forbidden");
    vi.advanceTimersByTime(60000);
    expect(sockets).toHaveLength(2);
    feed.stop();
  });

  function sockets(): { feed: LiveFeed; made: FakeSocket[]; states: ConnectionState[] } {
    const made: FakeSocket[] = [];
    const feed = new LiveFeed("ws://x/ws/metrics/", () => {
      const socket = new FakeSocket();
      made.push(socket);
      return socket as unknown as WebSocket;
    });
    const states: ConnectionState[] = [];
    feed.onState((state) => states.push(state));
    return { feed, made, states };
  }

  it("backs off from a server that accepts and closes at once, instead of retrying twice a second", () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { feed, made } = sockets();
    feed.start();
    for (let elapsed = 0; elapsed < 10000; elapsed += 50) {
      const socket = made.at(-1)!;
      if (socket.onopen) {
        // the live process's channel layer is down: it accepts, then closes with 1013 (try again later)
        const [open, close] = [socket.onopen, socket.onclose!];
        socket.onopen = null;
        open();
        close({ code: 1013 });
      }
      vi.advanceTimersByTime(50);
    }
    // 0.5, 1, 2, 4 and 8 s apart: five sockets in ten seconds (the backoff reset at each open made 20)
    expect(made.length).toBeLessThanOrEqual(6);
    feed.stop();
    vi.restoreAllMocks();
  });

  it("starts its backoff over once a socket has carried frames for a while", () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { feed, made } = sockets();
    feed.start();
    for (let i = 0; i < 4; i += 1) {
      made.at(-1)!.onclose?.({ code: 1006 });
      vi.advanceTimersByTime(15000);
    }
    made.at(-1)!.onopen?.();
    for (let seq = 1; seq <= STABLE_MS / 1000; seq += 1) {
      vi.advanceTimersByTime(1000);
      made.at(-1)!.onmessage?.({ data: JSON.stringify({ type: "heartbeat", seq }) });
    }
    made.at(-1)!.onclose?.({ code: 1006 });
    const before = made.length;
    vi.advanceTimersByTime(500);
    expect(made.length).toBe(before + 1);
    feed.stop();
    vi.restoreAllMocks();
  });

  it("gives up a socket that went silent and says it is reconnecting", () => {
    const { feed, made, states } = sockets();
    feed.start();
    made[0].onopen?.();
    made[0].onmessage?.({ data: JSON.stringify({ type: "heartbeat", seq: 1 }) });
    vi.advanceTimersByTime(4000);
    expect(states.at(-1)).toBe("open"); // a second or two without a frame is no outage
    made[0].onmessage?.({ data: JSON.stringify({ type: "heartbeat", seq: 2 }) });
    vi.advanceTimersByTime(7000); // then nothing: a half-open TCP connection the browser has not noticed
    expect(states.at(-1)).toBe("reconnecting");
    expect(made[0].close).toHaveBeenCalled();
    vi.advanceTimersByTime(15000);
    expect(made).toHaveLength(2);
    made[0].onclose?.({ code: 1006 }); // the old socket's close, late: it changes nothing
    expect(made).toHaveLength(2);
    made[1].onopen?.();
    expect(states.at(-1)).toBe("open");
    feed.stop();
  });

  it("tells a session that ended (4401) from a missing permission (4403), and retries neither", () => {
    const { feed, made, states } = sockets();
    feed.start();
    made[0].onopen?.();
    made[0].onclose?.({ code: 4401 });
    expect(states.at(-1)).toBe("signed-out");
    vi.advanceTimersByTime(60000);
    expect(made).toHaveLength(1);
    feed.stop();
  });

  it("retries at once when its tab is looked at again", () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { feed, made } = sockets();
    feed.start();
    for (let i = 0; i < 6; i += 1) {
      made.at(-1)!.onclose?.({ code: 1006 });
      vi.advanceTimersByTime(15000);
    }
    made.at(-1)!.onclose?.({ code: 1006 });
    const before = made.length;
    document.dispatchEvent(new Event("visibilitychange")); // jsdom's document is "visible"
    expect(made).toHaveLength(before + 1);
    feed.stop();
    vi.restoreAllMocks();
  });

  it("reconnects at once when the network comes back", () => {
    vi.spyOn(Math, "random").mockReturnValue(1);
    const { feed, made, states } = sockets();
    feed.start();
    for (let i = 0; i < 5; i += 1) {
      made.at(-1)!.onclose?.({ code: 1006 });
      vi.advanceTimersByTime(15000);
    }
    made.at(-1)!.onclose?.({ code: 1006 }); // the next try is 15 s away
    expect(states.at(-1)).toBe("reconnecting");
    const before = made.length;
    window.dispatchEvent(new Event("online"));
    expect(made).toHaveLength(before + 1);
    vi.advanceTimersByTime(15000);
    expect(made).toHaveLength(before + 1); // the pending retry was cancelled, not run as well
    feed.stop();
    window.dispatchEvent(new Event("online"));
    expect(made).toHaveLength(before + 1); // a stopped feed stays stopped
    vi.restoreAllMocks();
  });
});
