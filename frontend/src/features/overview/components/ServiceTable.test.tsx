import { cleanup, render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it } from "vitest";

import type { Service, SloStatus } from "../api/services";
import { ServiceTable } from "./ServiceTable";

const service: Service = {
  id: 7,
  name: "Clinical data API",
  slug: "clinical-api",
  kind: "api",
  owner_team: "Clinical platform",
  is_active: true,
  slo_p95_ms: 200,
  slo_p99_ms: 500,
  slo_avg_ms: 100,
  slo_min_rps: 100,
  slo_error_rate_pct: 5,
};

const window = (p95: number, met: boolean) => ({
  count: 120, p95_ms: p95, p99_ms: p95 * 2, error_rate_pct: 0, p95_met: met, p99_met: true, error_rate_met: true,
  error_budget_remaining: 0.75,
});

const slo = (met: boolean): SloStatus => ({
  service: "clinical-api", name: "Clinical data API",
  windows: { "1h": window(met ? 40 : 400, met), "24h": window(40, true), "7d": window(40, true) },
});

afterEach(cleanup);

const renderTable = (props: Parameters<typeof ServiceTable>[0]) =>
  render(
    <MemoryRouter>
      <ServiceTable {...props} />
    </MemoryRouter>,
  );

describe("ServiceTable", () => {
  it("links each service to its page and its admin, with its SLO targets", () => {
    renderTable({ services: [service], adminUrl: "/admin/" });
    expect(screen.getByRole("link", { name: "Clinical data API" }).getAttribute("href")).toBe("/services/clinical-api");
    expect(screen.getByRole("link", { name: "Clinical data API in the admin" }).getAttribute("href")).toBe(
      "/admin/services/service/7/change/",
    );
    expect(screen.getByText("200 ms")).toBeTruthy();
    expect(screen.getByText("no traffic")).toBeTruthy();
  });

  it("shows the last hour's SLO status and the error budget left", () => {
    renderTable({ services: [service], adminUrl: "/admin/", slo: { "clinical-api": slo(false) } });
    expect(screen.getByText(/missed · p95 400.0 ms · budget left 75%/)).toBeTruthy();
    cleanup();
    renderTable({ services: [service], adminUrl: "/admin/", slo: { "clinical-api": slo(true) } });
    expect(screen.getByText(/^met · p95 40.0 ms/)).toBeTruthy();
  });

  it("does not judge a p95 from fewer requests than the optimizer measures", () => {
    const few = { ...window(107479, true), count: 2, p95_met: null, p99_met: null, latency_judged: false };
    const status: SloStatus = { ...slo(true), min_requests: 20, windows: { ...slo(true).windows, "1h": few } };
    renderTable({ services: [service], adminUrl: "/admin/", slo: { "clinical-api": status } });
    expect(screen.getByText(/^not judged · 2 requests \(20 needed\) · p95 107479.0 ms/)).toBeTruthy();
    expect(screen.queryByText(/missed|^met/)).toBeNull();
  });

  it("says so when nothing is registered", () => {
    renderTable({ services: [], adminUrl: "/admin/" });
    expect(screen.getByText(/No services registered yet/)).toBeTruthy();
  });
});
