import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { createElement, type ReactNode } from "react";
import { Link, MemoryRouter, Route, Routes, useLocation } from "react-router";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { PageErrorBoundary } from "../components/ui/PageErrorBoundary";
import { lazyWithRetry } from "../lib/lazyWithRetry";

// The Rate limits page's code, held back until a test lets it come (a slow network, a server restarting).
const gate = vi.hoisted(() => {
  let release: (module: unknown) => void = () => undefined;
  const promise = new Promise((resolve) => {
    release = resolve;
  });
  return { promise, release: (module: unknown) => release(module) };
});
vi.mock("./routes/RateLimitsPage", () => gate.promise);

import { App } from "./App";

class QuietSocket {
  onopen = null;
  onmessage = null;
  onclose = null;
  close() {}
}

beforeEach(() => {
  vi.stubGlobal("WebSocket", QuietSocket);
  vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ results: [] }), { status: 200 })));
  vi.spyOn(console, "error").mockImplementation(() => undefined); // React reports the caught error
});

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  window.history.pushState({}, "", "/");
});

function Boundary({ children }: { children: ReactNode }) {
  const { pathname } = useLocation();
  return <PageErrorBoundary resetKey={pathname}>{children}</PageErrorBoundary>;
}

describe("a page whose code failed to load", () => {
  it("loads it again once the user comes back to it, not only after a full reload", async () => {
    // Down for its first load and the 3 retries, back for the next: React.lazy kept the first failure for good.
    let calls = 0;
    const load = vi.fn(async () => {
      calls += 1;
      if (calls <= 4) throw new Error("Failed to fetch dynamically imported module");
      return { default: () => <h1>Slow page</h1> };
    });
    const SlowPage = lazyWithRetry(load, { delayMs: 1, fallback: <p>Loading…</p> });
    render(
      <MemoryRouter initialEntries={["/slow"]}>
        <Link to="/">Home</Link> <Link to="/slow">Slow</Link>
        <Boundary>
          <Routes>
            <Route path="/" element={<h1>Home page</h1>} />
            <Route path="/slow" element={<SlowPage />} />
          </Routes>
        </Boundary>
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getByTestId("page-failed").textContent).toMatch(/could not be shown/));
    expect(load).toHaveBeenCalledTimes(4);

    fireEvent.click(screen.getByRole("link", { name: "Home" }));
    await screen.findByRole("heading", { name: "Home page" });
    fireEvent.click(screen.getByRole("link", { name: "Slow" }));
    await screen.findByRole("heading", { name: "Slow page" });
    expect(screen.queryByTestId("page-failed")).toBeNull();
    expect(load).toHaveBeenCalledTimes(5);

    fireEvent.click(screen.getByRole("link", { name: "Home" })); // loaded: kept, not loaded again
    await screen.findByRole("heading", { name: "Home page" });
    fireEvent.click(screen.getByRole("link", { name: "Slow" }));
    await screen.findByRole("heading", { name: "Slow page" });
    expect(load).toHaveBeenCalledTimes(5);
  });

  it("shows it failed once its retries are spent, not retrying for good", async () => {
    const load = vi.fn(async (): Promise<{ default: () => null }> => {
      throw new Error("Failed to fetch dynamically imported module");
    });
    const SlowPage = lazyWithRetry(load, { retries: 1, delayMs: 1, fallback: <p>Loading…</p> });
    render(
      <MemoryRouter initialEntries={["/slow"]}>
        <Boundary>
          <SlowPage />
        </Boundary>
      </MemoryRouter>,
    );
    await screen.findByTestId("page-failed");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(load).toHaveBeenCalledTimes(2);
    expect(screen.getByTestId("page-failed")).toBeTruthy();
  });
});

describe("opening a page whose code is still loading", () => {
  it('says "Loading…" in place of the previous page', async () => {
    window.history.pushState({}, "", "/dashboard/");
    render(<App />);
    await screen.findByRole("heading", { level: 1, name: "Overview" });

    fireEvent.click(screen.getByRole("link", { name: "Rate limits" }));
    // Navigation is a transition: under one Suspense boundary for every page, the Overview stayed on screen
    // (the address and the highlighted link said Rate limits) for as long as the code took, retries and all.
    await screen.findByText("Loading…");
    expect(screen.queryByRole("heading", { level: 1, name: "Overview" })).toBeNull();

    await act(async () => gate.release({ default: () => createElement("h1", null, "Rate limits page") }));
    await screen.findByRole("heading", { level: 1, name: "Rate limits page" });
    expect(screen.queryByText("Loading…")).toBeNull();
  });
});
