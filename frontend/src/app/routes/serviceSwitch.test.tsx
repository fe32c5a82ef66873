import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { Link, MemoryRouter, Route, Routes } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

// Every render of a chart, with the page it was drawn on: a frame drawn is a frame seen.
const drawn: { on: string; values: string }[] = [];
let page = "";
vi.mock("../../components/ui/Chart", () => ({
  Chart: ({ title, series }: { title: string; series: { label: string; values: unknown[] }[] }) => {
    drawn.push({ on: page, values: series.map((s) => s.values.join(",")).join(";") });
    return <figure data-testid="chart">{title}</figure>;
  },
}));

import ServicePage from "./ServicePage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  drawn.length = 0;
});

describe("ServicePage switching services", () => {
  it("never draws the previous service's series under the next one's name", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        const service = /^\/api\/v1\/services\/([\w-]+)\//.exec(url);
        if (service) return new Response(JSON.stringify({ slug: service[1], name: service[1].toUpperCase() }));
        if (page === "ward-b") return new Promise<Response>(() => undefined); // the next service's: slow to come
        return new Response(JSON.stringify({ metric: "m", step: 60, points: [["2026-11-27T12:00:00Z", 555]] }));
      }),
    );
    page = "ward-a";
    render(
      <MemoryRouter initialEntries={["/services/ward-a"]}>
        <Link to="/services/ward-b">next</Link>
        <Routes>
          <Route path="/services/:slug" element={<ServicePage />} />
        </Routes>
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getAllByTestId("chart").length).toBeGreaterThan(0));
    page = "ward-b";
    act(() => {
      fireEvent.click(screen.getByRole("link", { name: "next" }));
    });
    await waitFor(() => expect(screen.queryAllByTestId("chart")).toHaveLength(0));
    // The render with the new address drew ward A's charts (555) once, under ward B's heading, before the
    // effect emptied them: a frame of another service's figures.
    expect(drawn.filter((d) => d.on === "ward-b")).toEqual([]);
  });
});
