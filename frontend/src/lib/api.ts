import { endSession, idleHeaders } from "./session";

/** Field name (dotted for nested ones, e.g. "items[0].code") -> its messages, from a 400's body. */
export type FieldErrors = Record<string, string[]>;

/** JSON over the session the admin login opened; writes carry the CSRF token whoami gives (csrfHeaders). */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    /** Seconds the server asked us to wait (a 429's Retry-After), else null. */
    public retryAfter: number | null = null,
    /** A 400's field-level messages ({} when there are none). */
    public fields: FieldErrors = {},
  ) {
    super(message);
  }
}

/** What an error state holds: the message, the HTTP status and the field-level messages. */
export interface ErrorState {
  message: string;
  code: number | null;
  fields?: FieldErrors;
}

/** Any failure as an error state (a network error has no status and no fields). */
export function errorState(failure: unknown): ErrorState {
  const error = failure as Partial<ApiError> & { message?: string };
  return {
    message: error?.message ?? String(failure),
    code: error?.status ?? null,
    ...(error?.fields && Object.keys(error.fields).length ? { fields: error.fields } : {}),
  };
}

function collect(value: unknown, path: string, into: FieldErrors): void {
  if (typeof value === "string") {
    (into[path] ??= []).push(value);
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => collect(item, typeof item === "string" ? path : `${path}[${i}]`, into));
  } else if (value && typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) collect(inner, path ? `${path}.${key}` : key, into);
  }
}

/**
 * The field-level messages of an error body: the API's `{"detail", "code", "errors": {field: [...]}}`, or
 * DRF's bare `{field: ["message"]}`. Nested serializers' messages are keyed by their dotted path.
 */
export function fieldErrors(body: unknown): FieldErrors {
  if (!body || typeof body !== "object" || Array.isArray(body)) return {};
  const record = body as Record<string, unknown>;
  const fields: FieldErrors = {};
  if (record.errors && typeof record.errors === "object") {
    collect(record.errors, "", fields);
  } else if (!("detail" in record)) {
    collect(record, "", fields);
  }
  return fields;
}

/**
 * How long a request may go unanswered. fetch has no deadline of its own, and the pages skip a refresh while
 * their last request is unanswered, so one request that never answered (a dropped connection, a proxy holding
 * it open, a laptop waking from sleep) stopped every later refresh of the page. A minute by default; a page
 * refreshing every so often waits a few of its periods (refreshDeadline).
 */
export const REQUEST_TIMEOUT_MS = 60_000;

/**
 * The deadline of a request repeated every `refreshMs`: three periods, and never under REQUEST_TIMEOUT_MS. A
 * slow answer is still waited for (the page skips its ticks meanwhile), but not for ever.
 */
export function refreshDeadline(refreshMs: number): number {
  return Math.max(REQUEST_TIMEOUT_MS, 3 * refreshMs);
}

/** No answer before the deadline. It has no status, so the pages say it as they say a network failure. */
export class RequestTimeout extends Error {
  override name = "TimeoutError";

  constructor(public ms: number) {
    super(`The server did not answer within ${Math.round(ms / 1000)} s`);
  }
}

/**
 * `work` with a deadline: the signal it is given aborts when the caller's does or when `ms` have passed, and
 * the promise settles then even where `work` never looks at its signal (a loader of several requests, a body
 * still arriving), rejecting with the caller's abort reason or a RequestTimeout.
 */
export function withDeadline<T>(work: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal, ms: number = REQUEST_TIMEOUT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const controller = new AbortController();
    const follow = () => controller.abort(signal?.reason);
    const timer = setTimeout(() => controller.abort(new RequestTimeout(ms)), ms);
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", follow);
    };
    controller.signal.addEventListener(
      "abort",
      () => {
        done();
        reject(controller.signal.reason);
      },
      { once: true },
    );
    if (signal?.aborted) return follow();
    signal?.addEventListener("abort", follow, { once: true });
    try {
      work(controller.signal).then(
        (value) => {
          done();
          resolve(value);
        },
        (error: unknown) => {
          done();
          reject(error);
        },
      );
    } catch (error) {
      done();
      reject(error);
    }
  });
}

/**
 * GET JSON, within `timeoutMs` (the body included). Never through the browser's HTTP cache: the API's answers
 * carry patient data and say nothing about caching, so Chromium kept them in its disk cache, on a ward's shared
 * workstation, after sign-out.
 */
export function getJson<T>(url: string, signal?: AbortSignal, timeoutMs: number = REQUEST_TIMEOUT_MS): Promise<T> {
  return withDeadline(
    async (bounded) => {
      const value = await answered<T>(
        await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json", ...idleHeaders() }, signal: bounded }),
      );
      if (url.split("?", 1)[0] === WHOAMI_URL) noteCsrfToken(value);
      return value;
    },
    signal,
    timeoutMs,
  );
}

// --- CSRF ----------------------------------------------------------------------------------------------------

/** Where the signed-in user's scopes, and the session's CSRF token, are read. */
export const WHOAMI_URL = "/api/v1/whoami/";
export const CSRF_HEADER = "X-CSRFToken";
const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

let csrfToken: string | null = null;

/**
 * Keep the CSRF token a whoami answer carries. The session's CSRF cookie is HttpOnly, so the page cannot read it:
 * the server hands the token over in whoami, which the dashboard loads when it opens.
 */
export function noteCsrfToken(whoami: unknown): void {
  const token = (whoami as { csrf_token?: unknown } | null)?.csrf_token;
  if (typeof token === "string" && token) csrfToken = token;
}

/** The header an unsafe request carries: the session's CSRF token once known ({} before, and for a safe method). */
export function csrfHeaders(method: string): Record<string, string> {
  return UNSAFE_METHODS.has(method.toUpperCase()) && csrfToken ? { [CSRF_HEADER]: csrfToken } : {};
}

/** Tests only: a fresh tab's state. */
export function resetCsrfTokenForTests(): void {
  csrfToken = null;
}

async function csrfRefused(response: Response): Promise<boolean> {
  if (response.status !== 403) return false;
  try {
    const body = (await response.clone().json()) as { detail?: unknown };
    return typeof body?.detail === "string" && body.detail.startsWith("CSRF Failed");
  } catch {
    return false;
  }
}

/**
 * Send a JSON body with an unsafe method, with the session's CSRF token (X-CSRFToken) once whoami has given it.
 * The server also takes a session's post that the browser marks same-origin, so the first request never waits
 * on whoami; refused for CSRF (a browser sending no fetch metadata before whoami answered, or a token rotated by
 * a sign-in in another tab), the token is read from whoami again and the request sent once more.
 */
export function sendJson<T>(
  method: string,
  url: string,
  body: unknown,
  signal?: AbortSignal,
  timeoutMs: number = REQUEST_TIMEOUT_MS,
): Promise<T> {
  return withDeadline(
    async (bounded) => {
      const send = () =>
        fetch(url, {
          method,
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "application/json", "Content-Type": "application/json", ...csrfHeaders(method), ...idleHeaders() },
          body: JSON.stringify(body),
          signal: bounded,
        });
      let response = await send();
      if (await csrfRefused(response)) {
        const stale = csrfToken;
        csrfToken = null;
        await getJson(WHOAMI_URL, bounded, timeoutMs).catch(() => undefined);
        if (csrfToken !== null && csrfToken !== stale) response = await send();
      }
      return answered<T>(response);
    },
    signal,
    timeoutMs,
  );
}

/**
 * POST a JSON body to a search that reads (the patient window), within `timeoutMs`. What it searches by, a
 * name or a birth date, goes in the body, never in the URL, so no access log or proxy log keeps it. The server
 * takes it from a staff session only with evidence that this site's page sent it: the browser's
 * `Sec-Fetch-Site: same-origin`, or the CSRF token that sendJson adds.
 */
export function postSearch<T>(url: string, body: Record<string, unknown>, signal?: AbortSignal, timeoutMs: number = REQUEST_TIMEOUT_MS): Promise<T> {
  return sendJson<T>("POST", url, body, signal, timeoutMs);
}

/**
 * The answer's JSON, or an ApiError. A 401 (or a sign-in page) also ends the session in this tab: the pages
 * holding patient data drop it, not just show a banner over it.
 */
async function answered<T>(response: Response): Promise<T> {
  if (response.status === 401) endSession();
  if (!response.ok) {
    let detail = response.statusText;
    let fields: FieldErrors = {};
    try {
      const body = (await response.json()) as { detail?: unknown };
      fields = fieldErrors(body);
      if (typeof body?.detail === "string") detail = body.detail;
      else if (Object.keys(fields).length) detail = "Invalid input";
    } catch {
      // a non-JSON error page: keep the status text
    }
    const retryAfter = Number(response.headers.get("Retry-After"));
    throw new ApiError(response.status, detail, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null, fields);
  }
  try {
    return (await response.json()) as T;
  } catch {
    // A sign-in page or a proxy's error page answered instead of the API: "Unexpected token '<'" said nothing.
    const signIn = response.redirected && /\/login\b/.test(response.url);
    if (signIn) endSession();
    throw new ApiError(signIn ? 401 : response.status, signIn ? "Your session has ended" : "The server answered with a web page, not data");
  }
}

/** A query string from the defined values only. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
