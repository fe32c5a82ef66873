import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom does not have; the chart's props are what these tests check.
vi.mock("../../components/ui/Chart", () => ({
  Chart: ({ title, series }: { title: string; series: { label: string; values: unknown[] }[] }) => (
    <figure data-testid="chart">
      {title}: {series.map((s) => `${s.label}=${s.values.join(",")}`).join(" ")}
    </figure>
  ),
}));

import { xRange } from "../../components/ui/chartText";
import { LiveFeed } from "../../lib/liveFeed";
import { LiveFeedContext } from "../../lib/useLiveFeed";
import AuditPage from "./AuditPage";
import BenchmarkRunPage from "./BenchmarkRunPage";
import BenchmarksPage from "./BenchmarksPage";
import CachePage from "./CachePage";
import InferencePage from "./InferencePage";
import OverviewPage from "./OverviewPage";
import PatientsPage from "./PatientsPage";
import ScalingPage from "./ScalingPage";
import ServicePage from "./ServicePage";
import RateLimitsPage, { minuteAxis } from "./RateLimitsPage";
import { VitalsChart } from "../../features/patients/components/VitalsChart";

const refuse = (status: number, detail: string) => () => new Response(JSON.stringify({ detail }), { status });
// The API's 400: DRF's field errors under "errors" (apps/core/api/exceptions.py).
const invalid = (errors: Record<string, string[]>) => () =>
  new Response(JSON.stringify({ detail: "Invalid input.", code: "invalid", errors }), { status: 400 });

function serve(routes: Record<string, unknown>) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => {
      const path = Object.keys(routes).find((prefix) => url.startsWith(prefix));
      if (!path) return new Response(JSON.stringify({ detail: "Not found." }), { status: 404 });
      const body = routes[path];
      if (body instanceof Response) return body;
      if (typeof body === "function") return (body as () => Response)();
      return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
    }),
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const policy = (scope: string, requests: number, refused: number) => ({
  id: 1, scope, description: "", enabled: true, requests: 100, effective_requests: 50, period_seconds: 60,
  burst_per_second: null, fail_open: true, priority: 1, adaptive: true, current_factor: 0.5,
  usage: { requests, refused, busiest_client: "ehr-gateway" as string | null, busiest_client_minute: "2026-11-27T12:00:00Z" as string | null,
           busiest_client_per_minute: 45, busiest_client_limit_per_minute: 50 as number | null, busiest_client_share: 0.9,
           busiest_client_attempted: 45 as number | null, busiest_client_refused: 0 as number | null,
           exempt_clients: [] as string[], exempt_requests: 0,
           minutes: [["2026-11-27T12:00:00Z", requests, refused]] },
  adjustments: [{ at: "2026-11-27T12:00:00Z", direction: "tighten", old_factor: 1, new_factor: 0.5, reason: "CPU 92% > 70%" }],
});

describe("RateLimitsPage", () => {
  it("shows each scope's limit in force, usage, 429s and adaptive changes", async () => {
    serve({ "/api/v1/ratelimits/": { results: [policy("patient_data", 120, 7), policy("audit_logs", 0, 0)] } });
    render(<RateLimitsPage />);
    await screen.findByTestId("limits-table");
    expect(screen.getAllByText(/50\/1 min/)).toHaveLength(2);
    expect(screen.getAllByText("(of 100)")).toHaveLength(2);
    expect(screen.getByText("120")).toBeTruthy();
    expect(screen.getByTestId("chart").textContent).toContain("patient_data: requests and 429s per minute");
    expect(screen.getByTestId("chart").textContent).toContain(`429s=${",".repeat(59)}7`);
    expect(screen.getByText(/tighten ×1.00 → ×0.50 \(CPU 92% > 70%\)/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "audit_logs" }));
    expect(screen.getByTestId("chart").textContent).toContain("audit_logs");
    expect(screen.getByRole("button", { name: "audit_logs" }).getAttribute("aria-pressed")).toBe("true");
    expect(screen.getByRole("button", { name: "patient_data" }).getAttribute("aria-pressed")).toBe("false");
  });

  it("names the busiest client, its minute against the limit in force then, and the exempt clients apart", async () => {
    const limited = policy("patient_data", 3000, 0);
    limited.usage = { ...limited.usage, busiest_client: "ehr-gateway", busiest_client_minute: "2026-11-27T14:02:00Z",
                      busiest_client_per_minute: 40, busiest_client_limit_per_minute: 100, busiest_client_share: 0.4,
                      busiest_client_attempted: 52, busiest_client_refused: 12,
                      exempt_clients: ["benchmark-run-7-1"], exempt_requests: 2895 };
    const zone = process.env.TZ;
    process.env.TZ = "Asia/Kolkata"; // UTC+5:30: the minute is shown in the browser's zone, not the server's UTC
    try {
      serve({ "/api/v1/ratelimits/": { results: [limited] } });
      render(<RateLimitsPage />);
      const line = (await screen.findByTestId("busiest-client")).textContent;
      expect(line).toBe(`Busiest client: ehr-gateway: 52 attempted, 12 refused (limit 100/min) in the minute at ${new Date("2026-11-27T14:02:00Z").toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit", timeZoneName: "short" })}`);
      expect(line).toMatch(/ in the minute at (7:32 PM|19:32) GMT\+5:30$/);
      expect(screen.getByTestId("exempt-clients").textContent).toBe("Exempt from limits: benchmark-run-7-1 (2,895 requests, not limited)");
    } finally {
      process.env.TZ = zone;
      if (zone === undefined) delete process.env.TZ;
    }
  });

  it("says the session client (older rollups) is every signed-in user together, and no exempt line when there is none", async () => {
    const sessions = policy("dashboard", 80, 0);
    sessions.usage = { ...sessions.usage, busiest_client: "session", busiest_client_minute: "2026-11-27T12:00:00Z",
                       busiest_client_per_minute: 12, busiest_client_limit_per_minute: 16.6667, busiest_client_share: 0.72,
                       busiest_client_attempted: 12, busiest_client_refused: 0 };
    serve({ "/api/v1/ratelimits/": { results: [sessions] } });
    render(<RateLimitsPage />);
    expect((await screen.findByTestId("busiest-client")).textContent).toMatch(/^Busiest client: session \(all signed-in users together\): 12 attempted, 0 refused \(limit 16\.67\/min\) in the minute at .+$/);
    expect(screen.queryByTestId("exempt-clients")).toBeNull();
  });

  it("says there is no busiest client when only exempt clients sent requests", async () => {
    const exempt = policy("patient_data", 2895, 0);
    exempt.usage = { ...exempt.usage, busiest_client: null, busiest_client_minute: null,
                     busiest_client_per_minute: 0, busiest_client_limit_per_minute: null, busiest_client_share: 0,
                     exempt_clients: ["benchmark-run-7-1"], exempt_requests: 2895 };
    serve({ "/api/v1/ratelimits/": { results: [exempt] } });
    render(<RateLimitsPage />);
    expect((await screen.findByTestId("busiest-client")).textContent).toBe("Busiest client: none in the last hour");
    expect(screen.getByText("0%")).toBeTruthy();
    expect(screen.getByTestId("exempt-clients").textContent).toBe("Exempt from limits: benchmark-run-7-1 (2,895 requests, not limited)");
  });

  it("charts an hour of minutes ending at the last reading, not half an hour past a single one", async () => {
    const last = Date.parse("2026-11-27T12:00:00Z") / 1000;
    // One reading: the chart's x ends at it (the chart pads a lone x by half an hour on each side: into the future).
    const one = minuteAxis([["2026-11-27T12:00:00Z", 120, 7]]);
    expect(one.x).toHaveLength(60);
    expect(xRange(one.x, Math.min(...one.x), Math.max(...one.x), true)).toEqual([last - 59 * 60, last]);
    expect(one.requests.slice(-1)).toEqual([120]);
    expect(one.refused.filter((v) => v !== null)).toEqual([7]);
    // Several: each at its own minute, the range ending at the last.
    const some = minuteAxis([["2026-11-27T11:30:00Z", 5, 0], ["2026-11-27T12:00:00Z", 9, 2]]);
    expect(xRange(some.x, Math.min(...some.x), Math.max(...some.x), true)).toEqual([last - 59 * 60, last]);
    expect(some.requests[some.x.indexOf(last - 30 * 60)]).toBe(5);
    expect(some.requests.filter((v) => v !== null)).toEqual([5, 9]);
    expect(minuteAxis([]).x).toEqual([]);

    serve({ "/api/v1/ratelimits/": { results: [policy("patient_data", 120, 7)] } });
    render(<RateLimitsPage />);
    expect((await screen.findByTestId("chart")).textContent).toContain(`requests=${",".repeat(59)}120 429s=${",".repeat(59)}7`);
  });

  it("says there is no policy rather than showing nothing", async () => {
    serve({ "/api/v1/ratelimits/": { results: [] } });
    render(<RateLimitsPage />);
    expect(await screen.findByText("No rate-limit policy yet.")).toBeTruthy();
  });

  it("says which permission is missing on a 403", async () => {
    serve({ "/api/v1/ratelimits/": new Response(JSON.stringify({ detail: "Needs the permission." }), { status: 403 }) });
    render(<RateLimitsPage />);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/lacks the permission/));
  });
});

describe("CachePage", () => {
  it("lists namespaces with TTLs, hit rates per tier and a link to the admin policy", async () => {
    serve({
      "/api/v1/metrics/series/": { metric: "cache_hit_rate_pct", step: 900, points: [["2026-11-27T12:00:00Z", 91.5]] },
      "/api/v1/cache/namespaces/": {
        results: [{
          id: 3, namespace: "vital_signs", description: "", enabled: true, contains_phi: true, encrypt: true,
          tiers_enabled: ["l1", "l2"], ttl_seconds: 600, stale_while_revalidate_seconds: 60, requests: 1000,
          hit_rate: 0.9, hit_rate_1h: 0.85, stale_serves: 2, mean_load_ms: 3.2,
          tiers: { l1: { hits: 700, misses: 300, hit_rate: 0.7, evictions: 0, entries: 10 },
                   l2: { hits: 200, misses: 100, hit_rate: 0.6667, evictions: 0, entries: 0 } },
        }],
      },
    });
    render(
      <MemoryRouter>
        <CachePage />
      </MemoryRouter>,
    );
    await screen.findByTestId("cache-table");
    expect(screen.getByRole("link", { name: "vital_signs" }).getAttribute("href")).toBe("/admin/caching/cachepolicy/3/change/");
    expect(screen.getByText("10 min")).toBeTruthy();
    expect(screen.getByText("85.0%")).toBeTruthy();
    expect(screen.getByText("70.0%")).toBeTruthy();
    expect(screen.getByText("off")).toBeTruthy(); // L3 is disabled for this namespace
    await waitFor(() => expect(screen.getByTestId("chart").textContent).toContain("hit rate %=91.5"));
  });

  it("says why the trend is missing, and shows no meter for a namespace never read", async () => {
    serve({
      "/api/v1/metrics/series/": refuse(403, "You do not have permission to perform this action."),
      "/api/v1/cache/namespaces/": {
        results: [{
          id: 4, namespace: "medications", description: "", enabled: true, contains_phi: true, encrypt: true,
          tiers_enabled: ["l1"], ttl_seconds: 600, stale_while_revalidate_seconds: 60, requests: 0,
          hit_rate: null, hit_rate_1h: null, stale_serves: 0, mean_load_ms: null, tiers: {},
        }],
      },
    });
    render(
      <MemoryRouter>
        <CachePage />
      </MemoryRouter>,
    );
    await screen.findByTestId("cache-table");
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/^Could not load the hit rate trend: .*lacks the permission/));
    expect(document.querySelector("meter")).toBeNull();
  });

  it("says there is no namespace rather than an empty table", async () => {
    serve({ "/api/v1/metrics/series/": { metric: "cache_hit_rate_pct", step: 900, points: [] }, "/api/v1/cache/namespaces/": { results: [] } });
    render(
      <MemoryRouter>
        <CachePage />
      </MemoryRouter>,
    );
    expect(await screen.findByText("No cache namespace yet.")).toBeTruthy();
    expect(screen.queryByTestId("cache-table")).toBeNull();
  });
});

describe("AuditPage", () => {
  it("offers the recorded resource types to choose from, not a box where any spelling found nothing", async () => {
    serve({ "/api/v1/audit/": { next: null, results: [] } });
    render(<AuditPage />);
    const select = screen.getByRole("combobox", { name: "Resource type" }) as HTMLSelectElement;
    expect(select.tagName).toBe("SELECT");
    expect([...select.options].map((option) => option.value)).toEqual(["", "Patient", "Observation", "Encounter", "MedicationRequest", "ModelInference", "OptimizationRecommendation", "AuditEvent", "AuditChain"]);
    fireEvent.change(select, { target: { value: "Observation" } });
    await waitFor(() => expect(vi.mocked(fetch).mock.calls.map(([url]) => String(url))).toContain("/api/v1/audit/?resource_type=Observation&page_size=500"));
  });

  it("asks once per pause in choosing, not once per change, and shows the latest filter's events", async () => {
    const event = { id: 1, recorded_at: "2026-11-27T12:00:00Z", actor_type: "user", actor_name: "admin", action: "read",
      resource_type: "Patient", resource_id: "7", outcome: "success", purpose_of_use: "TREAT", result_count: null,
      served_from_cache: false, request_id: "r" };
    serve({ "/api/v1/audit/": { next: null, results: [event] } });
    render(<AuditPage />);
    await waitFor(() => expect(screen.getByTestId("audit-count").textContent).toBe("1 events loaded"));
    const input = screen.getByRole("combobox", { name: "Resource type" });
    for (const chosen of ["Encounter", "Observation", "AuditEvent", "Patient"]) fireEvent.change(input, { target: { value: chosen } });
    await waitFor(() => expect(vi.mocked(fetch)).toHaveBeenCalledTimes(2));
    await new Promise((resolve) => setTimeout(resolve, 400));
    const urls = vi.mocked(fetch).mock.calls.map(([url]) => String(url));
    expect(urls).toEqual(["/api/v1/audit/?page_size=500", "/api/v1/audit/?resource_type=Patient&page_size=500"]);
    await waitFor(() => expect(screen.getByTestId("audit-count").textContent).toBe("1 events loaded"));
  });

  it("says why it is refused, once, with the permission hint", async () => {
    serve({ "/api/v1/audit/": new Response(JSON.stringify({ detail: "You do not have permission to perform this action." }), { status: 403 }) });
    render(<AuditPage />);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/perform this action\. Your account lacks the permission/));
    expect(screen.getByTestId("audit-count").textContent).toBe("No events loaded.");
  });

  it("shows a refused filter's message by its input, not only 'Invalid input'", async () => {
    serve({ "/api/v1/audit/": invalid({ resource_type: ["Ensure this field has no more than 40 characters."] }) });
    render(<AuditPage />);
    const input = screen.getByRole("combobox", { name: "Resource type" });
    await waitFor(() => expect(input.getAttribute("aria-invalid")).toBe("true"));
    const message = document.getElementById(input.getAttribute("aria-describedby")!)!;
    expect(message.textContent).toBe("Ensure this field has no more than 40 characters.");
    expect(message.closest("label")).toBe(input.closest("label"));
    expect(screen.getByRole("alert").textContent).toBe("Could not load the audit trail: Invalid input. See the message by the field.");
  });

  it("lists the messages of parameters it has no input for", async () => {
    serve({ "/api/v1/audit/": invalid({ page_size: ["Ensure this value is less than or equal to 1000."] }) });
    render(<AuditPage />);
    await waitFor(() => expect(screen.getByTestId("field-errors").textContent).toBe("Page size: Ensure this value is less than or equal to 1000."));
  });
});

describe("ServicePage", () => {
  const point = (value: number) => ({ metric: "m", step: 60, points: [["2026-11-27T12:00:00Z", value]] });
  const renderAt = (path: string) =>
    render(
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/services/:slug" element={<ServicePage />} />
        </Routes>
      </MemoryRouter>,
    );

  it("is titled by the service's name, and a refused series fails its own panel only", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        if (url.startsWith("/api/v1/services/clinical-api/")) return new Response(JSON.stringify({ slug: "clinical-api", name: "Clinical data API" }));
        if (url.includes("metric=cpu_pct") || url.includes("metric=memory_pct")) return refuse(403, "You do not have permission to perform this action.")();
        return new Response(JSON.stringify(point(12)));
      }),
    );
    renderAt("/services/clinical-api");
    expect(await screen.findByRole("heading", { level: 1, name: "Clinical data API" })).toBeTruthy();
    await waitFor(() => expect(document.title).toBe("Clinical data API · Control plane · Dashboard"));
    await waitFor(() => expect(screen.getAllByTestId("chart")).toHaveLength(4));
    expect(screen.getByTestId("panel-4").textContent).toBe(
      "Could not load host cpu and memory: You do not have permission to perform this action. Your account lacks the permission for it; ask an administrator.",
    );
    expect(screen.queryByText(/Loading/)).toBeNull();
  });

  it("charts the limiter's refusals apart, from their own series", async () => {
    const asked: string[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        if (url.startsWith("/api/v1/services/api/")) return new Response(JSON.stringify({ slug: "api", name: "API" }));
        const metric = new URL(url, "http://x").searchParams.get("metric") ?? "";
        asked.push(metric);
        return new Response(JSON.stringify(point(metric === "rate_limited_rps" ? 33.5 : 1)));
      }),
    );
    renderAt("/services/api");
    await waitFor(() => expect(screen.getAllByTestId("chart")).toHaveLength(5));
    expect(asked).toContain("rate_limited_rps");
    expect(screen.getByTestId("panel-3").textContent).toBe("Rate limited: 429/s=33.5");
  });

  it("says once that a service is unknown, instead of loading forever or a 400 per panel", async () => {
    serve({
      "/api/v1/services/nope/": refuse(404, "Not found."),
      "/api/v1/metrics/series/": refuse(400, "Invalid input."),
    });
    renderAt("/services/nope");
    await waitFor(() => expect(screen.getAllByRole("alert")).toHaveLength(1));
    expect(screen.getByRole("heading", { level: 1 }).textContent).toBe("nope");
    expect(screen.getByRole("alert").textContent).toBe("Could not load the service nope: Not found.");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(screen.getAllByRole("alert")).toHaveLength(1);
    expect(screen.queryByTestId("panel-0")).toBeNull();
    expect(screen.queryByText(/Loading/)).toBeNull();
  });
});

describe("OverviewPage", () => {
  it("says the live feed is not allowed instead of waiting for a snapshot forever", async () => {
    serve({ "/api/v1/services/": { results: [] }, "/api/v1/metrics/slo/": { results: [] } });
    const feed = { state: "forbidden", onState: (listener: (state: string) => void) => (listener("forbidden"), () => {}), onMessage: () => () => {}, latest: () => null };
    window.history.pushState({}, "", "/dashboard/");
    render(
      <LiveFeedContext.Provider value={feed as unknown as LiveFeed}>
        <MemoryRouter>
          <OverviewPage />
        </MemoryRouter>
      </LiveFeedContext.Provider>,
    );
    expect(screen.getByTestId("live-forbidden").textContent).toMatch(/live feed is not allowed for this account: it needs the permission/);
    expect(screen.getByRole("link", { name: "sign in again" }).getAttribute("href")).toBe("/admin/login/?next=%2Fdashboard%2F");
    expect(screen.queryByText(/Waiting for the first live snapshot/)).toBeNull();
    await screen.findByText(/No services registered yet/);
  });

  it("tells an ended session from a missing permission", async () => {
    serve({ "/api/v1/services/": { results: [] }, "/api/v1/metrics/slo/": { results: [] } });
    const feed = { state: "signed-out", onState: (listener: (state: string) => void) => (listener("signed-out"), () => {}), onMessage: () => () => {}, latest: () => null };
    render(
      <LiveFeedContext.Provider value={feed as unknown as LiveFeed}>
        <MemoryRouter>
          <OverviewPage />
        </MemoryRouter>
      </LiveFeedContext.Provider>,
    );
    expect(screen.getByTestId("live-forbidden").textContent).toMatch(/^The live feed stopped: this session has ended/);
    expect(screen.getByRole("link", { name: "Sign in again" })).toBeTruthy();
    await screen.findByText(/No services registered yet/);
  });

  it("marks the live figures as not live when the feed drops, and starts from the feed's last snapshot when opened again", async () => {
    serve({ "/api/v1/services/": { results: [] }, "/api/v1/metrics/slo/": { results: [] } });
    vi.useFakeTimers({ toFake: ["Date", "setInterval", "clearInterval", "setTimeout", "clearTimeout"] });
    try {
      const sockets: { onopen?: () => void; onmessage?: (event: { data: string }) => void; onclose?: (event: { code: number }) => void; close: () => void }[] = [];
      const feed = new LiveFeed("ws://x/ws/metrics/", () => {
        const socket = { close: () => {} };
        sockets.push(socket);
        return socket as unknown as WebSocket;
      });
      feed.start();
      sockets[0].onopen?.();
      const data = {
        overall: { service: "all", name: "All routes", rps: 42.5, p95_ms: 18.2, error_rate_pct: 0.5 },
        services: [], cache_hit_rate: null, host: {}, alerts: [],
      };
      sockets[0].onmessage?.({ data: JSON.stringify({ type: "snapshot", at: "2026-12-05T07:00:00Z", data }) });
      const page = () =>
        render(
          <LiveFeedContext.Provider value={feed}>
            <MemoryRouter>
              <OverviewPage />
            </MemoryRouter>
          </LiveFeedContext.Provider>,
        );
      const first = page();
      expect(screen.getByRole("rowheader", { name: "All routes" })).toBeTruthy();
      expect(screen.getByTestId("live-as-of")).toBeTruthy();
      expect(screen.queryByTestId("live-stale")).toBeNull();

      act(() => sockets[0].onclose?.({ code: 1006 })); // the live process restarts
      expect(screen.getByTestId("live-stale").textContent).toMatch(/^Not live: the live feed is reconnecting\./);
      expect(screen.getByTestId("no-alerts").textContent).toMatch(/^No alert was firing at/);
      first.unmount();

      // Opened again later: the feed's last snapshot, with its age, not the page's first one as if new.
      act(() => vi.advanceTimersByTime(60_000));
      page();
      expect(screen.getByRole("rowheader", { name: "All routes" })).toBeTruthy();
      expect(screen.getByTestId("live-stale").textContent).toMatch(/from .+, 60 s ago\.$/);
      feed.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("PatientsPage", () => {
  it("shows a refused search's error instead of counting forever", async () => {
    serve({ "/api/v1/patients/window/": refuse(403, "You do not have permission to perform this action.") });
    render(<PatientsPage />);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/^Could not load patients: You do not have permission to perform this action\. Your account lacks/));
    expect(screen.getByTestId("patient-count").textContent).toBe("Not counted.");
  });

  it("shows a refused search's field message by the search box", async () => {
    serve({ "/api/v1/patients/window/": invalid({ name: ["Ensure this field has no more than 100 characters."] }) });
    render(<PatientsPage />);
    const input = screen.getByRole("searchbox");
    await waitFor(() => expect(input.getAttribute("aria-invalid")).toBe("true"));
    expect(document.getElementById(input.getAttribute("aria-describedby")!)!.textContent).toBe("Ensure this field has no more than 100 characters.");
  });
});

describe("VitalsChart", () => {
  it("charts a patient's single reading, titled in the singular", async () => {
    serve({
      "/api/v1/patients/7/vitals/": {
        results: [{ id: 1, code: "8867-4", display: "Heart rate", value: 72, unit: "/min", effective_at: "2026-11-27T12:00:00Z" }],
      },
    });
    render(<VitalsChart patient={{ id: 7, identifier_system: "", mrn: "M", family_name: "Doe", given_name: "Jo", birth_date: "1980-01-02", sex: "female" }} />);
    await waitFor(() => expect(screen.getByTestId("chart").textContent).toBe("Heart rate (1 reading): Heart rate=72"));
  });
});

describe("BenchmarksPage", () => {
  it("charts the p95 of a first finished run (one point), not only from the second", async () => {
    const run = { id: 1, plan: "clinical-api load", plan_id: 1, kind: "load", service: "clinical-api", status: "succeeded", passed: true,
      created_at: "2026-11-27T12:00:00Z", finished_at: "2026-11-27T12:05:00Z", progress: 1, summary: { requests: 100, rps: 10, p95_ms: 120 }, regressions: [] };
    serve({ "/api/v1/benchmarks/runs/": { results: [run] } });
    render(
      <MemoryRouter>
        <BenchmarksPage />
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getByTestId("chart").textContent).toContain("p95 ms=120"));
  });

  it("says a run met or missed its gates, in the words of the run page and the reports", async () => {
    const base = { plan: "clinical-api load", plan_id: 1, kind: "load", service: "clinical-api", status: "succeeded",
      created_at: "2026-11-27T12:00:00Z", finished_at: "2026-11-27T12:05:00Z", progress: 1, summary: { requests: 100, rps: 10, p95_ms: 120 }, regressions: [] };
    serve({ "/api/v1/benchmarks/runs/": { results: [{ ...base, id: 2, passed: false }, { ...base, id: 1, passed: true }] } });
    render(
      <MemoryRouter>
        <BenchmarksPage />
      </MemoryRouter>,
    );
    await waitFor(() => expect(screen.getByText("a gate missed")).toBeTruthy());
    expect(screen.getByText("every gate met")).toBeTruthy();
    expect(screen.queryByText("passed")).toBeNull();
  });
});

describe("ScalingPage", () => {
  const forecast = {
    metric: "request_rate", created_at: "2026-11-27T12:00:00Z", model: "holt_winters", points: [], recent: [], patterns: {},
    scores: { criterion: "mase_168", candidates: [{ model: "holt_winters", mase_24: 0.71, mase_168: 0.64, smape: 9.5, coverage: 0.8 }] },
  };

  it("shows the policy's states by their names and the score the model was chosen on", async () => {
    serve({
      "/api/v1/scaling/policies/": {
        results: [{
          id: 1, service: "clinical-api", service_name: "Clinical data API", min_replicas: 2, max_replicas: 50, floor_replicas: 2,
          vpa_mode: "Off", keda_enabled: false, emergency_mode: false, emergency_manual: false, emergency_alert_rule: null,
          apply_state: "not_configured", apply_error: "",
          history_source: "synthetic", forecasts: { request_rate: forecast }, earlier_request_rate: null, plan: null,
        }],
      },
    });
    render(<ScalingPage />);
    await screen.findByRole("heading", { name: "Clinical data API" });
    const text = document.body.textContent!;
    expect(text).toContain("VPA off (recommendations only)");
    expect(text).toContain("cluster: no cluster configured");
    expect(text).toContain("history: synthetic hospital traffic (demo)");
    expect(text).toContain("chosen on backtest MASE (m=168) 0.64");
    expect(text).not.toMatch(/not_configured|m=24/);
    expect(screen.getByTestId("emergency-1").textContent).toBe("Emergency mode: off");
  });

  it("says emergency mode was set by hand, apart from the alert rule that would also set it", async () => {
    serve({
      "/api/v1/scaling/policies/": {
        results: [{
          id: 1, service: "clinical-api", service_name: "Clinical data API", min_replicas: 2, max_replicas: 50, floor_replicas: 10,
          vpa_mode: "Off", keda_enabled: false, emergency_mode: true, emergency_manual: true,
          emergency_alert_rule: { id: 4, name: "ED surge", enabled: true, firing: false },
          apply_state: "active", apply_error: "", history_source: "synthetic", forecasts: {}, earlier_request_rate: null, plan: null,
        }],
      },
    });
    render(<ScalingPage />);
    expect((await screen.findByTestId("emergency-1")).textContent).toBe("Emergency mode: on (set by hand), minimum lifted to 10 replicas");
  });

  it("says why a metric has no new forecast, beside the older one or in its place", async () => {
    serve({
      "/api/v1/scaling/policies/": {
        results: [{
          id: 1, service: "clinical-api", service_name: "Clinical data API", min_replicas: 2, max_replicas: 50, floor_replicas: 2,
          vpa_mode: "Off", keda_enabled: false, emergency_mode: false, emergency_manual: false, emergency_until: null,
          emergency_alert_rule: null, apply_state: "active", apply_error: "", history_source: "synthetic",
          forecasts: { request_rate: forecast }, earlier_request_rate: null, plan: null,
          forecast_skipped: { request_rate: "not enough history: 40 hours since a gap of over a week (72 needed)" },
        }],
      },
    });
    render(<ScalingPage />);
    expect((await screen.findByTestId("forecast-skipped-1")).textContent).toBe(
      "The last hourly refresh made no new forecast: not enough history: 40 hours since a gap of over a week (72 needed). This one is older.",
    );
  });

  it("moves between manifest files with the arrow keys, the file shown being the selected tab's panel", async () => {
    serve({
      "/api/v1/scaling/policies/1/manifests/": { files: { "a-hpa.yaml": "kind: HorizontalPodAutoscaler", "a-pdb.yaml": "kind: PodDisruptionBudget" }, errors: [] },
      "/api/v1/scaling/policies/": {
        results: [{
          id: 1, service: "a", service_name: "A", min_replicas: 2, max_replicas: 5, floor_replicas: 2, vpa_mode: "Off", keda_enabled: false,
          emergency_mode: false, emergency_manual: false, emergency_alert_rule: null, apply_state: "active", apply_error: "",
          history_source: "metrics", forecasts: {}, earlier_request_rate: null, plan: null,
        }],
      },
    });
    render(<ScalingPage />);
    fireEvent.click(await screen.findByRole("button", { name: "Preview manifests" }));
    const first = await screen.findByRole("tab", { name: "a-hpa.yaml" });
    expect(screen.getByRole("tabpanel", { name: "a-hpa.yaml" }).textContent).toBe("kind: HorizontalPodAutoscaler");
    expect(screen.getByRole("tab", { name: "a-pdb.yaml" }).getAttribute("tabindex")).toBe("-1");
    first.focus();
    fireEvent.keyDown(first, { key: "ArrowRight" });
    const second = screen.getByRole("tab", { name: "a-pdb.yaml" });
    expect(second.getAttribute("aria-selected")).toBe("true");
    expect(document.activeElement).toBe(second);
    expect(screen.getByRole("tabpanel", { name: "a-pdb.yaml" }).textContent).toBe("kind: PodDisruptionBudget");
    fireEvent.keyDown(second, { key: "ArrowRight" }); // wraps round
    expect(document.activeElement).toBe(first);
  });
});

describe("Command names", () => {
  it("are code, not backticks", async () => {
    serve({ "/api/v1/benchmarks/runs/": { results: [] }, "/api/v1/inference/deployments/": { results: [] }, "/api/v1/metrics/series/": refuse(403, "No.") });
    const { container } = render(
      <MemoryRouter>
        <BenchmarksPage />
        <InferencePage />
      </MemoryRouter>,
    );
    await screen.findByText(/No runs yet/);
    expect([...container.querySelectorAll("code")].map((code) => code.textContent)).toEqual(["manage.py bench run", "manage.py optimize model"]);
    expect(container.textContent).not.toContain("`");
  });
});

describe("BenchmarkRunPage", () => {
  const run = (status: string) => ({
    id: 7, plan: "clinical-api load", plan_id: 1, kind: "load", service: "clinical-api", status, passed: null,
    created_at: "2026-12-05T07:00:00Z", finished_at: null, progress: 0.5, summary: {}, regressions: [],
    timeline: [], histogram: [], verdicts: [], findings: {}, error: "", report_url: "/r/7/",
  });

  it("refreshes a run while it runs, and stops once it has finished", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      let status = "running";
      serve({ "/api/v1/benchmarks/runs/7/": () => new Response(JSON.stringify(run(status)), { status: 200 }) });
      render(
        <MemoryRouter initialEntries={["/benchmarks/7"]}>
          <Routes>
            <Route path="/benchmarks/:runId" element={<BenchmarkRunPage />} />
          </Routes>
        </MemoryRouter>,
      );
      await screen.findByText(/clinical-api, running/);
      status = "succeeded";
      await act(async () => {
        await vi.advanceTimersByTimeAsync(5100);
      });
      await screen.findByText(/clinical-api, succeeded/);
      const calls = (fetch as unknown as { mock: { calls: unknown[] } }).mock.calls.length;
      await act(async () => {
        await vi.advanceTimersByTimeAsync(60_000);
      });
      expect((fetch as unknown as { mock: { calls: unknown[] } }).mock.calls.length).toBe(calls);
    } finally {
      vi.useRealTimers();
    }
  });
});
