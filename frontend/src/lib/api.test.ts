import { afterEach, describe, expect, it, vi } from "vitest";

import {
  ApiError,
  CSRF_HEADER,
  csrfHeaders,
  errorState,
  fieldErrors,
  getJson,
  postSearch,
  refreshDeadline,
  resetCsrfTokenForTests,
  sendJson,
  WHOAMI_URL,
} from "./api";

afterEach(() => vi.unstubAllGlobals());

const answer = (status: number, body: unknown) => vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify(body), { status })));

describe("fieldErrors", () => {
  it("reads the API's errors, DRF's bare shape and nested serializers' messages", () => {
    expect(fieldErrors({ detail: "Invalid input.", code: "invalid", errors: { name: ["Too long."] } })).toEqual({ name: ["Too long."] });
    expect(fieldErrors({ name: ["Too long.", "Not a name."], since: "Bad date." })).toEqual({ name: ["Too long.", "Not a name."], since: ["Bad date."] });
    expect(fieldErrors({ errors: { items: [{}, { code: ["Unknown code."] }], period: { start: ["Required."] } } })).toEqual({
      "items[1].code": ["Unknown code."],
      "period.start": ["Required."],
    });
    expect(fieldErrors({ detail: "Not found." })).toEqual({});
    expect(fieldErrors(["a list"])).toEqual({});
  });
});

describe("getJson", () => {
  it("never reads or stores patient data in the browser's HTTP cache", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ count: 1 }), { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    expect(await getJson("/api/v1/patients/window/?offset=0&limit=100")).toEqual({ count: 1 });
    expect(fetch).toHaveBeenCalledWith("/api/v1/patients/window/?offset=0&limit=100", expect.objectContaining({ cache: "no-store" }));
  });

  it("says a web page answered, not data, and a sign-in page is a 401", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response("<!doctype html><title>Proxy</title>", { status: 200 })));
    const page = (await getJson("/api/v1/services/").catch((e) => e)) as ApiError;
    expect(page.message).toBe("The server answered with a web page, not data");
    const signIn = new Response("<!doctype html><form>", { status: 200 });
    Object.defineProperties(signIn, { redirected: { value: true }, url: { value: "http://x/admin/login/?next=/api/v1/services/" } });
    vi.stubGlobal("fetch", vi.fn(async () => signIn));
    const ended = (await getJson("/api/v1/services/").catch((e) => e)) as ApiError;
    expect([ended.status, ended.message]).toEqual([401, "Your session has ended"]);
  });

  it("keeps a 400's field messages on the error, not only its detail", async () => {
    answer(400, { detail: "Invalid input.", code: "invalid", errors: { resource_type: ["Ensure this field has no more than 40 characters."] } });
    const error = (await getJson("/api/v1/audit/").catch((e) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.message).toBe("Invalid input.");
    expect(error.fields).toEqual({ resource_type: ["Ensure this field has no more than 40 characters."] });
    expect(errorState(error)).toEqual({ message: "Invalid input.", code: 400, fields: error.fields });
  });

  it("says 'Invalid input' for DRF's bare field errors, which have no detail", async () => {
    answer(400, { limit: ["Ensure this value is less than or equal to 500."] });
    const error = (await getJson("/x/").catch((e) => e)) as ApiError;
    expect(error.message).toBe("Invalid input");
    expect(error.fields).toEqual({ limit: ["Ensure this value is less than or equal to 500."] });
  });

  it("has no fields on other errors", async () => {
    answer(403, { detail: "No." });
    expect(errorState(await getJson("/x/").catch((e) => e))).toEqual({ message: "No.", code: 403 });
    expect(errorState(new TypeError("Failed to fetch"))).toEqual({ message: "Failed to fetch", code: null });
  });
});

describe("the request deadline", () => {
  afterEach(() => vi.useRealTimers());

  /** A fetch that never answers and never looks at its signal (a proxy holding the connection open). */
  const hanging = () => {
    const signals: AbortSignal[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn((_url: string, init: RequestInit) => {
        signals.push(init.signal as AbortSignal);
        return new Promise<Response>(() => {});
      }),
    );
    return signals;
  };

  it("gives up a GET that never answers after a minute, as a failure without a status, aborting it", async () => {
    vi.useFakeTimers();
    const signals = hanging();
    const outcome = getJson("/api/v1/benchmarks/runs/5/").catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(signals[0].aborted).toBe(false); // merely slow: still waited for
    await vi.advanceTimersByTimeAsync(1_000);
    const error = await outcome;
    // fetch has no deadline of its own: the promise never settled, and the page polling it never asked again.
    expect(error).toMatchObject({ name: "TimeoutError" });
    expect(errorState(error)).toEqual({ message: "The server did not answer within 60 s", code: null });
    expect(signals[0].aborted).toBe(true);
  });

  it("waits a few refresh periods for a page that refreshes slowly, and never under a minute", () => {
    expect([refreshDeadline(0), refreshDeadline(5000), refreshDeadline(60000)]).toEqual([60000, 60000, 180000]);
  });

  it("gives up a body that never finishes arriving, and a search as well as a GET", async () => {
    vi.useFakeTimers();
    const stalled = { ok: true, status: 200, headers: new Headers(), json: () => new Promise(() => {}) } as unknown as Response;
    vi.stubGlobal("fetch", vi.fn(async () => stalled));
    const body = getJson("/api/v1/services/", undefined, 5_000).catch((e: unknown) => e);
    hanging();
    const search = postSearch("/api/v1/patients/window/", { name: "x" }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(await body).toMatchObject({ name: "TimeoutError", message: "The server did not answer within 5 s" });
    expect(await search).toMatchObject({ name: "TimeoutError" });
  });

  it("still lets the caller abort, with the caller's reason, and leaves no timer behind an answer", async () => {
    vi.useFakeTimers();
    const signals = hanging();
    const caller = new AbortController();
    const outcome = getJson("/x/", caller.signal).catch((e: unknown) => e);
    caller.abort();
    expect(await outcome).toMatchObject({ name: "AbortError" });
    expect(signals[0].aborted).toBe(true);
    answer(200, { ok: 1 });
    expect(await getJson("/x/")).toEqual({ ok: 1 });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("CSRF on unsafe requests", () => {
  afterEach(() => resetCsrfTokenForTests());

  const whoami = { kind: "user", name: "nurse", scopes: ["patient:read"], expires_at: null, csrf_token: "tok-1" };

  it("sends the token whoami gave as X-CSRFToken on a POST, never on a GET", async () => {
    const fetch = vi.fn(async (url: string, _init?: RequestInit) => new Response(JSON.stringify(url === WHOAMI_URL ? whoami : { count: 0 }), { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    await getJson(WHOAMI_URL);
    await postSearch("/api/v1/patients/window/", { name: "x" });
    await getJson("/api/v1/services/");
    const headers = fetch.mock.calls.map(([, init]) => new Headers(init?.headers).get(CSRF_HEADER));
    expect(headers).toEqual([null, "tok-1", null]);
    expect(csrfHeaders("GET")).toEqual({});
    expect(csrfHeaders("delete")).toEqual({ [CSRF_HEADER]: "tok-1" });
  });

  it("posts at once before whoami answered, and on a CSRF refusal reads the token and posts once more", async () => {
    const posts: (string | null)[] = [];
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      if (url === WHOAMI_URL) return new Response(JSON.stringify(whoami), { status: 200 });
      const token = new Headers(init?.headers).get(CSRF_HEADER);
      posts.push(token);
      if (!token) return new Response(JSON.stringify({ detail: "CSRF Failed: CSRF token missing." }), { status: 403 });
      return new Response(JSON.stringify({ count: 3 }), { status: 200 });
    });
    vi.stubGlobal("fetch", fetch);
    expect(await postSearch("/api/v1/patients/window/", { name: "x" })).toEqual({ count: 3 });
    expect(posts).toEqual([null, "tok-1"]);
    expect(fetch.mock.calls.map(([url]) => url)).toEqual(["/api/v1/patients/window/", WHOAMI_URL, "/api/v1/patients/window/"]);
  });

  it("does not repeat a post refused for another reason, nor one whoami gives no token for", async () => {
    answer(403, { detail: "You do not have permission to perform this action." });
    const refused = (await postSearch("/api/v1/patients/window/", { name: "x" }).catch((e: unknown) => e)) as ApiError;
    expect(refused.status).toBe(403);
    expect(vi.mocked(fetch).mock.calls).toHaveLength(1);
    const fetchCsrf = vi.fn(async (url: string) =>
      url === WHOAMI_URL
        ? new Response(JSON.stringify({ ...whoami, csrf_token: null }), { status: 200 })
        : new Response(JSON.stringify({ detail: "CSRF Failed: CSRF token missing." }), { status: 403 }),
    );
    vi.stubGlobal("fetch", fetchCsrf);
    const csrf = (await sendJson("POST", "/api/v1/patients/window/", {}).catch((e: unknown) => e)) as ApiError;
    expect([csrf.status, csrf.message]).toEqual([403, "CSRF Failed: CSRF token missing."]);
    expect(fetchCsrf.mock.calls.map(([url]) => url)).toEqual(["/api/v1/patients/window/", WHOAMI_URL]);
  });
});
