import { useSyncExternalStore } from "react";

/**
 * The staff session as this tab sees it: how long its user has been idle, and whether the session has ended.
 *
 * The server signs a session out after SESSION_IDLE_SECONDS without activity, but most pages poll on their own
 * (every 10-60 s): counted as activity, they kept an unattended tab signed in all shift. Every API request says
 * how long ago the user last touched the page (USER_IDLE_HEADER), and the server counts it at that time.
 */
export const USER_IDLE_HEADER = "X-User-Idle-Seconds";

/**
 * What a person does at the page; a poll, a websocket frame or a timer is none of them. Scrolling counts by
 * what scrolls (a wheel, a touch, a key, a scrollbar's drag): a `scroll` event also fires when a poll's answer
 * makes a page shorter under a reader scrolled to its end, which would keep an unattended tab "active".
 */
export const USER_INPUT_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "touchmove", "focus"] as const;

let lastInputAt = Date.now(); // opening the page is the user's own doing
let tracking: (() => void) | null = null;

/** Note the user's input now (exported for the listeners and for tests). */
export function noteUserInput(now: number = Date.now()): void {
  lastInputAt = Math.max(lastInputAt, now);
}

/**
 * Listen for the user's input on the window (capture: a focus moving between fields does not bubble, and a
 * list may stop a wheel's propagation). Idempotent; returns the function that stops listening.
 */
export function trackUserInput(target: Window = window): () => void {
  if (tracking) return tracking;
  const onInput = () => noteUserInput();
  const options = { capture: true, passive: true } as const;
  USER_INPUT_EVENTS.forEach((type) => target.addEventListener(type, onInput, options));
  tracking = () => {
    USER_INPUT_EVENTS.forEach((type) => target.removeEventListener(type, onInput, options));
    tracking = null;
  };
  return tracking;
}

/** Whole seconds since the user's last input, never negative (a clock set back counts as input now). */
export function userIdleSeconds(now: number = Date.now()): number {
  return Math.max(0, Math.floor((now - lastInputAt) / 1000));
}

let lastRequestAt = Date.now();

/** The header every API request carries (and the moment of the request, for keepAliveWhileActive). */
export function idleHeaders(now: number = Date.now()): Record<string, string> {
  lastRequestAt = now;
  return { [USER_IDLE_HEADER]: String(userIdleSeconds(now)) };
}

export const KEEPALIVE_CHECK_MS = 60_000;
/** Requests this far apart are what a user at work on a quiet page is allowed; a minute of idle is none. */
export const KEEPALIVE_AFTER_MS = 5 * 60_000;
const KEEPALIVE_ACTIVE_SECONDS = 60;

/**
 * A user at work on a page that fetches nothing (reading a patient's chart, scrolling rows already loaded) is
 * not idle, but the server hears of activity only through requests: after 5 minutes without one, while the
 * user has touched the page within the last minute, `ping` tells it. An untouched tab sends nothing.
 */
export function keepAliveWhileActive(ping: () => Promise<unknown>): () => void {
  const timer = setInterval(() => {
    const now = Date.now();
    if (ended || now - lastRequestAt < KEEPALIVE_AFTER_MS || userIdleSeconds(now) >= KEEPALIVE_ACTIVE_SECONDS) return;
    ping().catch(() => undefined); // the server away: the live feed says so
  }, KEEPALIVE_CHECK_MS);
  return () => clearInterval(timer);
}

export const IDLE_CHECK_MS = 5_000;

/**
 * End the session in this tab once its user has been idle for the server's SESSION_IDLE_SECONDS (0: never).
 * The server signs the session out only when the next request or the live feed's recheck arrives; until then a
 * patient's chart stayed on an unattended ward screen. The check runs every few seconds, so the page drops its
 * patient data within IDLE_CHECK_MS of the timeout; the server ends the session at its own next check.
 */
export function endSessionWhenIdle(limitSeconds: number): () => void {
  if (!Number.isFinite(limitSeconds) || limitSeconds <= 0) return () => undefined;
  const timer = setInterval(() => {
    if (!ended && userIdleSeconds() >= limitSeconds) endSession();
  }, IDLE_CHECK_MS);
  return () => clearInterval(timer);
}

// --- the session's end -------------------------------------------------------------------------------------

let ended = false;
const listeners = new Set<() => void>();

/**
 * The session has ended (an API 401, the live feed's 4401): pages holding patient data drop it. For good in
 * this tab: signing in again loads the dashboard afresh.
 */
export function endSession(): void {
  if (ended) return;
  ended = true;
  listeners.forEach((listener) => listener());
}

export function sessionEnded(): boolean {
  return ended;
}

export function onSessionEnd(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Whether the session has ended, re-rendering when it does. */
export function useSessionEnded(): boolean {
  return useSyncExternalStore(onSessionEnd, sessionEnded, sessionEnded);
}

/** Tests only: a fresh tab's state. */
export function resetSessionForTests(now: number = Date.now()): void {
  ended = false;
  lastInputAt = now;
  lastRequestAt = now;
}
