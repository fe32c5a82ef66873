import { cleanup, render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

import { isLiveSnapshot } from "../../features/live/snapshot";
import type { LiveFeed, LiveMessage } from "../../lib/liveFeed";
import { LiveFeedContext } from "../../lib/useLiveFeed";
import OverviewPage from "./OverviewPage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const overall = { service: "all", name: "All routes", rps: 1, p95_ms: 2, error_rate_pct: 0 };

function feedWith(message: LiveMessage) {
  return {
    state: "open",
    onState: (listener: (state: string) => void) => (listener("open"), () => {}),
    onMessage: () => () => {},
    latest: (type: string) => (type === message.type ? message : null),
  } as unknown as LiveFeed;
}

describe("OverviewPage with a malformed snapshot frame", () => {
  // A frame from an older or newer server, or a proxy's mangling, that has `overall` and `services` but not
  // the rest: the panel read `snapshot.alerts.length` of undefined and the whole dashboard went blank.
  it.each([
    ["no alerts", { overall, services: [], host: {}, cache_hit_rate: null }],
    ["no host", { overall, services: [], alerts: [], cache_hit_rate: null }],
    ["a null row", { overall, services: [null], host: {}, alerts: [], cache_hit_rate: null }],
    ["a null alert", { overall, services: [], host: {}, alerts: [null], cache_hit_rate: null }],
    ["work that is not a list", { overall, services: [], host: {}, alerts: [], cache_hit_rate: null, work: {} }],
  ])("ignores a snapshot with %s instead of going blank", async (_what, data) => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ results: [] }), { status: 200 })));
    expect(isLiveSnapshot(data)).toBe(false);
    render(
      <LiveFeedContext.Provider value={feedWith({ type: "snapshot", data, receivedAt: Date.now() })}>
        <MemoryRouter>
          <OverviewPage />
        </MemoryRouter>
      </LiveFeedContext.Provider>,
    );
    expect(screen.getByText(/Waiting for the first live snapshot/)).toBeTruthy();
    await screen.findByText(/No services registered yet/);
  });

  it("still shows a well-formed one", () => {
    expect(isLiveSnapshot({ overall, services: [overall], host: {}, alerts: [], cache_hit_rate: 0.5, work: [] })).toBe(true);
    expect(isLiveSnapshot({ overall, services: [], host: {}, alerts: [], cache_hit_rate: null })).toBe(true);
  });
});
