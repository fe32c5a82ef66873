import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { backoffDelay, LiveFeed, type ConnectionState } from "./liveFeed";

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
    expect(messages).toEqual([{ type: "heartbeat", seq: 1 }]);

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
});
