import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// A page whose render throws: an API answer of an unexpected shape (a proxy's JSON, an older server), say.
vi.mock("./routes/ScalingPage", () => ({
  default: () => {
    throw new Error("Cannot read properties of undefined (reading 'map')");
  },
}));
// A page whose chunk cannot be loaded, retries and all (the server away, a deploy that removed it).
vi.mock("./routes/CachePage", () => Promise.reject(new Error("Failed to fetch dynamically imported module")));

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

describe("a page that fails", () => {
  it("says so under the header, and the other pages still open", async () => {
    window.history.pushState({}, "", "/dashboard/scaling");
    render(<App />);
    // The whole dashboard, header and all, was unmounted: a blank page with no word and no way on.
    const alert = await screen.findByTestId("page-failed");
    expect(alert.getAttribute("role")).toBe("alert");
    expect(alert.textContent).toMatch(/This page could not be shown/);
    expect(screen.getByRole("button", { name: "Reload the page" })).toBeTruthy();
    expect(screen.getByRole("navigation", { name: "Main" })).toBeTruthy();

    fireEvent.click(screen.getByRole("link", { name: "Overview" }));
    await screen.findByRole("heading", { level: 1, name: "Overview" });
    expect(screen.queryByTestId("page-failed")).toBeNull();
  });

  it("says so when a page's code cannot be loaded", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      window.history.pushState({}, "", "/dashboard/cache");
      render(<App />);
      await vi.advanceTimersByTimeAsync(5000); // lazyWithRetry's retries
      await waitFor(() => expect(screen.getByTestId("page-failed").textContent).toMatch(/could not be shown/));
      expect(screen.getByRole("navigation", { name: "Main" })).toBeTruthy();
    } finally {
      vi.useRealTimers();
    }
  });
});
