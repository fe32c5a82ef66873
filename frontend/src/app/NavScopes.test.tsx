import { cleanup, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { App } from "./App";

class QuietSocket {
  onopen = null;
  onmessage = null;
  onclose = null;
  close() {}
}

let answerWhoami: (response: Response) => void = () => undefined;

beforeEach(() => {
  vi.stubGlobal("WebSocket", QuietSocket);
  vi.stubGlobal(
    "fetch",
    vi.fn((url: string) =>
      url === "/api/v1/whoami/"
        ? new Promise<Response>((resolve) => (answerWhoami = resolve))
        : Promise.resolve(new Response(JSON.stringify({ results: [] }), { status: 200 })),
    ),
  );
  window.history.pushState({}, "", "/dashboard/");
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.pushState({}, "", "/");
});

const whoami = (scopes: string[]) => new Response(JSON.stringify({ kind: "user", name: "nurse", scopes, expires_at: null }), { status: 200 });
const links = () => within(screen.getByRole("navigation", { name: "Main" })).getAllByRole("link").map((link) => link.textContent);

describe("the main navigation", () => {
  it("shows neither Patients nor Audit before whoami answers, keeping their room", () => {
    render(<App />);
    expect(links()).toEqual(["Overview", "Cache", "Rate limits", "Benchmarks", "Inference", "Scaling"]);
    expect(screen.getByTestId("nav-pending-patients").getAttribute("aria-hidden")).toBe("true");
    expect(screen.getByTestId("nav-pending-audit").className).toBe("nav-pending");
  });

  it("offers Patients and Audit to the holders of their scopes only", async () => {
    render(<App />);
    answerWhoami(whoami(["patient:read", "clinical:read"]));
    await waitFor(() => expect(links()).toContain("Patients"));
    expect(links()).not.toContain("Audit");
    expect(screen.queryByTestId("nav-pending-audit")).toBeNull();
  });

  it("offers both to a user holding both, and neither to one holding none", async () => {
    render(<App />);
    answerWhoami(whoami(["patient:read", "audit:read"]));
    await waitFor(() => expect(links().slice(-2)).toEqual(["Patients", "Audit"]));
    cleanup();
    render(<App />);
    answerWhoami(whoami([]));
    await waitFor(() => expect(screen.queryByTestId("nav-pending-patients")).toBeNull());
    expect(links()).not.toContain("Patients");
    expect(links()).not.toContain("Audit");
  });

  it("leaves the decision to the pages when whoami fails", async () => {
    render(<App />);
    answerWhoami(new Response(JSON.stringify({ detail: "Server error" }), { status: 500 }));
    await waitFor(() => expect(links().slice(-2)).toEqual(["Patients", "Audit"]));
  });
});
