import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { App } from "./App";

class QuietSocket {
  onopen = null;
  onmessage = null;
  onclose = null;
  close() {}
}

const ADMIN_PAGE = `<form id="logout-form" method="post" action="/admin/logout/"><input type="hidden" name="csrfmiddlewaretoken" value="tok123"></form>`;

beforeEach(() => {
  vi.stubGlobal("WebSocket", QuietSocket);
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) =>
      url === "/admin/"
        ? new Response(ADMIN_PAGE, { status: 200 })
        : url === "/api/v1/whoami/"
          ? new Response(JSON.stringify({ kind: "user", name: "admin", scopes: [], expires_at: null, csrf_token: "tok-whoami" }), { status: 200 })
          : new Response(JSON.stringify({ results: [] }), { status: 200 }),
    ),
  );
});

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  window.history.pushState({}, "", "/");
});

describe("Sign out", () => {
  it("is in the header of every page", async () => {
    for (const path of ["/dashboard/", "/dashboard/cache", "/dashboard/no-such-page"]) {
      window.history.pushState({}, "", path);
      render(<App />);
      expect(within(screen.getByRole("banner")).getByRole("button", { name: "Sign out" })).toBeTruthy();
      cleanup();
    }
  });

  it("posts the admin's logout with the session's CSRF token from whoami", async () => {
    const submitted: { action: string; method: string; token: string | null }[] = [];
    vi.spyOn(HTMLFormElement.prototype, "submit").mockImplementation(function (this: HTMLFormElement) {
      submitted.push({ action: new URL(this.action).pathname, method: this.method, token: new FormData(this).get("csrfmiddlewaretoken") as string | null });
    });
    window.history.pushState({}, "", "/dashboard/");
    render(<App />);
    fireEvent.click(screen.getByRole("button", { name: "Sign out" }));
    await waitFor(() => expect(submitted).toEqual([{ action: "/admin/logout/", method: "post", token: "tok-whoami" }]));
  });
});

