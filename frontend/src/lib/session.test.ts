import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { postSearch, getJson } from "./api";
import { LiveFeed } from "./liveFeed";
import {
  endSession,
  endSessionWhenIdle,
  IDLE_CHECK_MS,
  idleHeaders,
  keepAliveWhileActive,
  noteUserInput,
  onSessionEnd,
  resetSessionForTests,
  sessionEnded,
  trackUserInput,
  USER_IDLE_HEADER,
  userIdleSeconds,
} from "./session";

const START = Date.UTC(2026, 11, 5, 8, 0, 0);

describe("the user's idle time", () => {
  let stop: () => void;
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
    resetSessionForTests(START);
    stop = trackUserInput(window);
  });
  afterEach(() => {
    stop();
    vi.useRealTimers();
  });

  it("grows while nobody touches the page, whatever the page itself does", () => {
    vi.advanceTimersByTime(90_500);
    window.dispatchEvent(new MessageEvent("message")); // a frame, a poll's answer: no one's input
    // A poll's answer that shortened the page under a reader at its end: the browser's scroll, not theirs.
    document.body.appendChild(document.createElement("div")).dispatchEvent(new Event("scroll"));
    window.dispatchEvent(new Event("scroll"));
    document.dispatchEvent(new Event("visibilitychange"));
    expect(userIdleSeconds()).toBe(90);
    expect(idleHeaders()).toEqual({ [USER_IDLE_HEADER]: "90" });
  });

  it.each([
    ["a key", () => document.body.dispatchEvent(new KeyboardEvent("keydown", { bubbles: true }))],
    ["a click", () => document.body.dispatchEvent(new Event("pointerdown", { bubbles: true }))],
    ["the mouse moving", () => document.body.dispatchEvent(new Event("pointermove", { bubbles: true }))],
    ["a wheel", () => document.body.dispatchEvent(new WheelEvent("wheel", { bubbles: true }))],
    ["a touch", () => document.body.dispatchEvent(new Event("touchstart", { bubbles: true }))],
    ["a finger scrolling", () => document.body.dispatchEvent(new Event("touchmove", { bubbles: true }))],
    // Does not bubble: heard only because the listeners capture.
    ["a field focused", () => document.body.appendChild(document.createElement("input")).dispatchEvent(new FocusEvent("focus"))],
  ])("starts again at %s", (_what, input) => {
    vi.advanceTimersByTime(600_000);
    expect(userIdleSeconds()).toBe(600);
    input();
    expect(userIdleSeconds()).toBe(0);
    vi.advanceTimersByTime(12_000);
    expect(userIdleSeconds()).toBe(12);
  });

  it("rides on every API request, GET and the posted search", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ count: 0 }), { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    try {
      vi.advanceTimersByTime(45_000);
      await getJson("/api/v1/services/");
      await postSearch("/api/v1/patients/window/", { name: "Do", offset: 0, limit: 100 });
      for (const [, init] of fetch.mock.calls as unknown as [string, RequestInit][]) {
        expect((init.headers as Record<string, string>)[USER_IDLE_HEADER]).toBe("45");
      }
      expect(fetch).toHaveBeenCalledTimes(2);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe("a user at work on a page that fetches nothing", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
    resetSessionForTests(START);
  });
  afterEach(() => vi.useRealTimers());

  it("tells the server after 5 minutes without a request, while an untouched tab says nothing", () => {
    const ping = vi.fn(async () => void idleHeaders()); // a request, as getJson's
    const stop = keepAliveWhileActive(ping);
    for (let minute = 1; minute <= 30; minute += 1) vi.advanceTimersByTime(60_000); // nobody there
    expect(ping).not.toHaveBeenCalled();

    resetSessionForTests(Date.now());
    for (let minute = 0; minute < 12; minute += 1) {
      vi.advanceTimersByTime(30_000);
      noteUserInput(); // reading and moving the mouse, no request
      vi.advanceTimersByTime(30_000);
    }
    expect(ping.mock.calls.length).toBe(2); // at minutes 5 and 10, not every minute
    stop();
  });
});

describe("the session's end", () => {
  beforeEach(() => resetSessionForTests());
  afterEach(() => {
    resetSessionForTests();
    vi.unstubAllGlobals();
  });

  it("comes with an API 401, not with a 403 or a server error", async () => {
    const heard = vi.fn();
    const stop = onSessionEnd(heard);
    for (const status of [403, 500, 429]) {
      vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ detail: "no" }), { status })));
      await getJson("/api/v1/services/").catch(() => undefined);
    }
    expect(sessionEnded()).toBe(false);
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ detail: "Authentication credentials were not provided." }), { status: 401 })));
    await getJson("/api/v1/services/").catch(() => undefined);
    expect(sessionEnded()).toBe(true);
    endSession();
    expect(heard).toHaveBeenCalledTimes(1);
    stop();
  });

  it("comes with the live feed's 4401, not its 4403", () => {
    const sockets: { onclose: ((event: { code: number }) => void) | null; onopen: (() => void) | null }[] = [];
    const make = () => {
      const socket = { onopen: null, onmessage: null, onclose: null, close: vi.fn() };
      sockets.push(socket);
      return socket as unknown as WebSocket;
    };
    const forbidden = new LiveFeed("ws://x/ws/metrics/", make);
    forbidden.start();
    sockets[0].onclose?.({ code: 4403 });
    expect(sessionEnded()).toBe(false);
    const signedOut = new LiveFeed("ws://x/ws/metrics/", make);
    signedOut.start();
    sockets[1].onopen?.();
    sockets[1].onclose?.({ code: 4401 });
    expect([signedOut.state, sessionEnded()]).toEqual(["signed-out", true]);
    forbidden.stop();
    signedOut.stop();
  });
});

describe("an unattended tab", () => {
  let stopTracking: () => void;
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
    resetSessionForTests(START);
    stopTracking = trackUserInput(window);
  });
  afterEach(() => {
    stopTracking();
    resetSessionForTests();
    vi.useRealTimers();
  });

  it("ends its session when the server's idle logoff is due, without waiting for a request", () => {
    const stop = endSessionWhenIdle(900);
    vi.advanceTimersByTime(600_000);
    document.body.dispatchEvent(new KeyboardEvent("keydown", { bubbles: true })); // the user, 10 min in
    vi.advanceTimersByTime(899_000);
    expect(sessionEnded()).toBe(false);
    vi.advanceTimersByTime(1_000 + IDLE_CHECK_MS);
    expect(sessionEnded()).toBe(true);
    stop();
  });

  it("never ends while the logoff is off, however long nobody touches it", () => {
    const stops = [endSessionWhenIdle(0), endSessionWhenIdle(Number.NaN)];
    vi.advanceTimersByTime(24 * 3600_000);
    expect(sessionEnded()).toBe(false);
    stops.forEach((stop) => stop());
  });
});
