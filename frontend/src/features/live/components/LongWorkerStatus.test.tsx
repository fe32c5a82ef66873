import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import type { LiveSnapshot, LongWorkerProbe } from "../snapshot";
import { LivePanel } from "./LivePanel";
import { longWorkerText } from "./WorkerStatus";

const snapshot: LiveSnapshot = {
  overall: { service: "all", name: "All routes", rps: 1, p95_ms: 1, error_rate_pct: 0 },
  services: [],
  cache_hit_rate: null,
  host: {},
  alerts: [],
};

const probe = (status: LongWorkerProbe["status"], workers: LongWorkerProbe["workers"], detail = ""): LongWorkerProbe => ({
  status,
  detail,
  workers,
});

afterEach(cleanup);

describe("the Overview's long worker", () => {
  it("shows the long worker beside the default worker (it showed the default worker alone)", () => {
    const workers = [
      { hostname: "long@pod-1", slots: 2, busy: 2 },
      { hostname: "long@pod-2", slots: 2, busy: 1 },
    ];
    render(<LivePanel snapshot={{ ...snapshot, long_worker: probe("ok", workers) }} />);
    const status = screen.getByTestId("long-worker-status");
    expect(status.textContent).toBe("Long worker: alive · 2 workers, 3 of 4 slots busy");
    expect(status.className).toBe("ok");
  });

  it("says busy, needs attention, gone and unknown apart", () => {
    expect(longWorkerText(probe("ok", [{ hostname: "long@a", slots: 1, busy: 1 }]))).toEqual({
      text: "Long worker: busy with long work · 1 worker, 1 of 1 slots busy",
      tone: "ok",
    });
    expect(longWorkerText(probe("degraded", [{ hostname: "long@a", slots: 2, busy: 0 }], "takes no heartbeat"))).toEqual({
      text: "Long worker: needs attention · 1 worker, 0 of 2 slots busy · takes no heartbeat",
      tone: "warn",
    });
    expect(longWorkerText(probe("degraded", [], "long queues whose worker is gone")).tone).toBe("bad");
    expect(longWorkerText(probe("unknown", [])).tone).toBe("muted");
  });

  it("says nothing of the long worker when an older server sends no reading", () => {
    render(<LivePanel snapshot={snapshot} />);
    expect(screen.queryByTestId("long-worker-status")).toBeNull();
  });
});
