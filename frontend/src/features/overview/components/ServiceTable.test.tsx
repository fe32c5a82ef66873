import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import type { Service } from "../api/services";
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

afterEach(cleanup);

describe("ServiceTable", () => {
  it("lists each service with its SLO targets and a link to its admin page", () => {
    render(<ServiceTable services={[service]} adminUrl="/admin/" />);
    const link = screen.getByRole("link", { name: "Clinical data API" });
    expect(link.getAttribute("href")).toBe("/admin/services/service/7/change/");
    expect(screen.getByText("200 ms")).toBeTruthy();
    expect(screen.getByText("5%")).toBeTruthy();
  });

  it("says so when nothing is registered", () => {
    render(<ServiceTable services={[]} adminUrl="/admin/" />);
    expect(screen.getByText(/No services registered yet/)).toBeTruthy();
  });
});
