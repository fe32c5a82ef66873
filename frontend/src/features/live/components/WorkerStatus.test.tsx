import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import type { LiveSnapshot, WorkerProbe } from "../snapshot";
import { LivePanel } from "./LivePanel";
import { workerText } from "./WorkerStatus";

const snapshot: LiveSnapshot = {
  overall: { service: "all", name: "All routes", rps: 1, p95_ms: 1, error_rate_pct: 0 },
  services: [],
  cache_hit_rate: null,
  host: {},
  alerts: [],
};

const probe = (state: WorkerProbe["state"], age: number | null): WorkerProbe => ({
  alive: state === "unknown" ? null : state === "ok" || state === "late",
  state,
  last_heartbeat_at: age === null ? null : "2026-12-06T12:00:00+00:00",
  last_heartbeat_age_seconds: age,
  hostname: age === null ? null : "celery@worker-1",
  max_age_seconds: 300,
});

afterEach(cleanup);

describe("the Overview's worker heartbeat", () => {
  it("says the worker is alive, with its last heartbeat's age and host", () => {
    const now = Date.parse("2026-12-06T12:00:10Z");
    render(<LivePanel snapshot={{ ...snapshot, worker: probe("ok", 12.4) }} receivedAt={now - 3000} now={now} />);
    const status = screen.getByTestId("worker-status");
    // 12.4 s old when the server read it, received 3 s ago: 15 s now.
    expect(status.textContent).toBe("Worker: alive · last heartbeat 15 s ago from celery@worker-1");
    expect(status.className).toBe("ok");
  });

  it("says a late, a stopped and a missing worker apart", () => {
    expect(workerText(probe("late", 95), 0)).toEqual({ text: "Worker: late · last heartbeat 95 s ago from celery@worker-1", tone: "warn" });
    expect(workerText(probe("down", 600), 0)).toEqual({ text: "Worker: not answering · last heartbeat 10 min ago from celery@worker-1", tone: "bad" });
    expect(workerText(probe("never", null), 5000)).toEqual({ text: "Worker: no worker answered (no heartbeat in the last day)", tone: "bad" });
    expect(workerText(probe("unknown", null), 0).tone).toBe("muted");
  });

  it("says nothing of a worker when an older server sends no reading", () => {
    render(<LivePanel snapshot={snapshot} />);
    expect(screen.queryByTestId("worker-status")).toBeNull();
  });
});
