import { afterEach, describe, expect, it, vi } from "vitest";

import { fetchPatientWindow } from "./patients";

afterEach(() => vi.unstubAllGlobals());

function server() {
  const fetch = vi.fn(async (_url: string, _init?: RequestInit) => new Response(JSON.stringify({ count: 0, offset: 0, results: [] }), { status: 200 }));
  vi.stubGlobal("fetch", fetch);
  return fetch;
}

describe("fetchPatientWindow", () => {
  it("posts a name search in a JSON body: the name never appears in the URL, so in no access log", async () => {
    const fetch = server();
    await fetchPatientWindow("Müller-Lüdenscheidt", 200, 100);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe("/api/v1/patients/window/");
    expect(url).not.toMatch(/M%C3%BCller|Müller|name=/);
    expect(init?.method).toBe("POST");
    expect(new Headers(init?.headers).get("Content-Type")).toBe("application/json");
    expect(JSON.parse(String(init?.body))).toEqual({ name: "Müller-Lüdenscheidt", offset: 200, limit: 100 });
    expect(init?.cache).toBe("no-store");
    expect(init?.credentials).toBe("same-origin");
  });

  it("keeps the whole list, which names no one, a GET", async () => {
    const fetch = server();
    await fetchPatientWindow("", 0, 100);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe("/api/v1/patients/window/?offset=0&limit=100");
    expect(init?.method ?? "GET").toBe("GET");
    expect(init?.body).toBeUndefined();
  });

  it("reads a refused post's field messages as a GET's", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ detail: "Invalid input.", errors: { name: ["Too long."] } }), { status: 400 })));
    const error = await fetchPatientWindow("x", 0, 100).catch((e) => e);
    expect([error.status, error.message, error.fields]).toEqual([400, "Invalid input.", { name: ["Too long."] }]);
  });
});
