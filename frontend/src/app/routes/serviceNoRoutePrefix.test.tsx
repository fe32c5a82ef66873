import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("../../components/ui/Chart", () => ({
  Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure>,
}));

import ServicePage from "./ServicePage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const point = { metric: "m", step: 60, points: [["2026-11-27T12:00:00Z", 7]] };

/** The service page of `service`, with every series request it sends recorded as its query. */
function renderService(service: Record<string, unknown>): URLSearchParams[] {
  const asked: URLSearchParams[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => {
      if (url.startsWith("/api/v1/services/")) return new Response(JSON.stringify(service));
      const query = new URL(url, "http://x").searchParams;
      asked.push(query);
      if (query.get("service") && service.route_prefix === "") {
        const detail = { service: [`Service '${String(service.slug)}' has no route prefix: its requests are not told apart.`] };
        return new Response(JSON.stringify(detail), { status: 400, headers: { "Content-Type": "application/json" } });
      }
      return new Response(JSON.stringify(point));
    }),
  );
  render(
    <MemoryRouter initialEntries={[`/services/${String(service.slug)}`]}>
      <Routes>
        <Route path="/services/:slug" element={<ServicePage />} />
      </Routes>
    </MemoryRouter>,
  );
  return asked;
}

describe("ServicePage of a service without a route prefix", () => {
  it("says once that it has no request metrics and asks for none", async () => {
    const asked = renderService({ slug: "workers", name: "Workers", route_prefix: "" });
    await waitFor(() => expect(screen.getAllByTestId("chart")).toHaveLength(1)); // the host's
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Four panels said "Could not load latency percentiles: … has no route prefix …", a 400 each every 15 s.
    expect(screen.queryAllByRole("alert")).toHaveLength(0);
    expect(screen.getAllByText("No route prefix: no request metrics for this service.")).toHaveLength(1);
    expect(asked.filter((query) => query.get("service") !== null)).toEqual([]);
    expect(asked.length).toBeGreaterThan(0);
    expect(screen.getByTestId("chart").textContent).toBe("Host CPU and memory");
  });

  it("charts a service with a route prefix as before", async () => {
    const asked = renderService({ slug: "clinical-api", name: "Clinical data API", route_prefix: "/api/v1/clinical/" });
    await waitFor(() => expect(screen.getAllByTestId("chart")).toHaveLength(5));
    expect(screen.queryByText(/No route prefix/)).toBeNull();
    expect(asked.filter((query) => query.get("service") === "clinical-api").length).toBeGreaterThanOrEqual(4);
  });
});
