import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import type { LiveSnapshot } from "../snapshot";
import { isLiveSnapshot } from "../snapshot";
import { LivePanel } from "./LivePanel";

const snapshot: LiveSnapshot = {
  overall: { service: "all", name: "All routes", rps: 42.5, p95_ms: 18.2, error_rate_pct: 0.5 },
  services: [{ service: "patients", name: "Patient API", rps: 40, p95_ms: 12.34, error_rate_pct: 0 }],
  cache_hit_rate: 0.912,
  host: { cpu_pct: 63, memory_pct: 41, pool_pct: 20 },
  alerts: [],
};

afterEach(cleanup);

describe("LivePanel", () => {
  it("shows each service's last minute, the cache and the host", () => {
    render(<LivePanel snapshot={snapshot} />);
    expect(screen.getByRole("rowheader", { name: "Patient API" })).toBeTruthy();
    expect(screen.getByText("12.3 ms")).toBeTruthy();
    expect(screen.getByTestId("host").textContent).toContain("Cache hit rate 91.2%");
    expect(screen.getByTestId("no-alerts")).toBeTruthy();
  });

  it("lists firing alerts", () => {
    const alert = { rule: "CPU above 80%", severity: "warning", message: "host CPU (%) is 93.0", since: "" };
    render(<LivePanel snapshot={{ ...snapshot, alerts: [alert] }} />);
    expect(screen.getByRole("alert").textContent).toContain("CPU above 80%: host CPU (%) is 93.0");
  });

  it("shows the progress of runs still going", () => {
    const work = [
      { kind: "benchmark" as const, id: 7, name: "clinical-api load", status: "running", progress: 0.4, message: "24 s" },
    ];
    render(<LivePanel snapshot={{ ...snapshot, work }} />);
    const bar = screen.getByRole("progressbar", { name: /Benchmark #7 clinical-api load \(running\): 24 s/ });
    expect((bar as HTMLProgressElement).value).toBe(0.4);
  });

  it("waits for the first snapshot, and tells a snapshot from a broadcast", () => {
    render(<LivePanel snapshot={null} />);
    expect(screen.getByText(/Waiting for the first live snapshot/)).toBeTruthy();
    expect(isLiveSnapshot(snapshot)).toBe(true);
    expect(isLiveSnapshot({ req_s: 1 })).toBe(false);
  });
});
