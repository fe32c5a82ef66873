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

  it("shows the limiter's refusals in a column of their own, and a dash where a server sends none", () => {
    const refused = { ...snapshot.services[0], rate_limited: 2000, rate_limited_rps: 33.33 };
    render(<LivePanel snapshot={{ ...snapshot, services: [refused] }} />);
    expect(screen.getByRole("columnheader", { name: "429/s" })).toBeTruthy();
    const cells = (name: string) => [...screen.getByRole("rowheader", { name }).closest("tr")!.querySelectorAll("td")].map((td) => td.textContent);
    expect(cells("Patient API")).toEqual(["40.0", "12.3 ms", "0.00%", "33.3"]);
    expect(cells("All routes")).toEqual(["42.5", "18.2 ms", "0.50%", "—"]);
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

  it("says when its figures are from, and that they are not live once they are old", () => {
    const received = Date.parse("2026-12-05T07:00:00Z");
    const { rerender } = render(<LivePanel snapshot={snapshot} receivedAt={received} now={received + 2000} connection="open" />);
    expect(screen.getByTestId("live-as-of").textContent).toContain(new Date(received).toLocaleTimeString(undefined, { timeZoneName: "short" }));
    expect(screen.queryByTestId("live-stale")).toBeNull();
    expect(screen.getByTestId("no-alerts").textContent).toBe("No alert is firing.");

    // Heartbeats still come, but no snapshot has for a while (the server's database is away, say).
    rerender(<LivePanel snapshot={snapshot} receivedAt={received} now={received + 90_000} connection="open" />);
    expect(screen.getByTestId("live-stale").textContent).toMatch(/^Not live: no new figures from the server\. These figures and alerts are from .+, 90 s ago\.$/);
    expect(screen.getByRole("status").textContent).toBe("Not live: no new figures from the server.");
    expect(screen.getByTestId("no-alerts").textContent).toMatch(/^No alert was firing at .+; nothing is known since\.$/);

    // The feed dropped: not live at once, whatever the age.
    rerender(<LivePanel snapshot={snapshot} receivedAt={received} now={received + 1000} connection="reconnecting" />);
    expect(screen.getByTestId("live-stale").textContent).toMatch(/^Not live: the live feed is reconnecting\. .+, 1 s ago\.$/);
  });
});

describe("LivePanel's spoken summary", () => {
  it("reads the overall figures out politely, at most once a minute, never the table itself", () => {
    const at = (rps: number) => ({ ...snapshot, overall: { ...snapshot.overall, rps } });
    const { rerender } = render(<LivePanel snapshot={at(42.5)} receivedAt={0} now={0} />);
    const region = screen.getByTestId("live-summary");
    expect(region.getAttribute("aria-live")).toBe("polite");
    expect(region.textContent).toBe("Last minute, All routes: 42.5 requests per second, p95 18.2 ms, errors 0.50%.");
    // A new snapshot every second: the region keeps its text (a screen reader would read each change).
    for (let second = 1; second < 60; second += 1) {
      rerender(<LivePanel snapshot={at(42.5 + second)} receivedAt={second * 1000} now={second * 1000} />);
      expect(screen.getByTestId("live-summary").textContent).toContain("42.5 requests per second");
    }
    rerender(<LivePanel snapshot={at(7)} receivedAt={60_000} now={60_000} />);
    expect(screen.getByTestId("live-summary").textContent).toContain("7.0 requests per second");
    // The per-second table is in no live region.
    expect(screen.getByRole("table").closest("[aria-live]")).toBeNull();
  });

  it("says nothing new while the figures are stale (the banner says the feed stopped)", () => {
    render(<LivePanel snapshot={snapshot} receivedAt={0} now={120_000} connection="reconnecting" />);
    expect(screen.getByTestId("live-summary").textContent).toBe("");
  });
});
