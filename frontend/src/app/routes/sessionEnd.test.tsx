import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom does not have (as in pages.test.tsx).
vi.mock("../../components/ui/Chart", () => ({ Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure> }));

import { endSession, resetSessionForTests } from "../../lib/session";
import AuditPage from "./AuditPage";
import PatientsPage from "./PatientsPage";

const patient = { id: 7, identifier_system: "urn:mrn", mrn: "M7", family_name: "Doe", given_name: "Jo", birth_date: "1980-01-02", sex: "female" };
const event = { id: 1, recorded_at: "2026-11-27T12:00:00Z", actor_type: "user", actor_name: "admin", action: "read",
  resource_type: "Patient", resource_id: "7", outcome: "success", purpose_of_use: "TREAT", result_count: null,
  served_from_cache: false, request_id: "r" };

function serve(routes: Record<string, () => Response>) {
  const fetch = vi.fn(async (url: string) => {
    const path = Object.keys(routes).find((prefix) => url.startsWith(prefix));
    return path ? routes[path]() : new Response(JSON.stringify({ detail: "Not found." }), { status: 404 });
  });
  vi.stubGlobal("fetch", fetch);
  return fetch;
}
const ok = (body: unknown) => () => new Response(JSON.stringify(body), { status: 200 });

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  resetSessionForTests();
});

describe("when the session ends", () => {
  it("the Patients page drops its patients, not just shows a banner over them", async () => {
    const fetch = serve({ "/api/v1/patients/window/": ok({ count: 2, offset: 0, results: [patient, { ...patient, id: 8 }] }) });
    // jsdom lays nothing out: the list is given a size so that its virtualizer renders the rows.
    vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(520);
    vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(800);
    render(<PatientsPage />);
    await waitFor(() => expect(screen.getByTestId("patient-count").textContent).toBe("2 patients"));
    await waitFor(() => expect(document.body.textContent).toMatch(/Doe, Jo/)); // on screen until then
    const calls = fetch.mock.calls.length;

    act(() => endSession()); // the live feed's 4401: the session went idle, nothing on this page polls

    expect(screen.queryByTestId("patient-count")).toBeNull();
    expect(screen.queryByRole("searchbox")).toBeNull();
    expect(screen.queryByRole("list", { name: "Patients" })).toBeNull();
    expect(document.body.textContent).not.toMatch(/Doe|1980-01-02/);
    expect(screen.getByTestId("session-ended").textContent).toMatch(/session has ended.*Sign in again/);
    expect(screen.getByRole("link", { name: "Sign in again" }).getAttribute("href")).toMatch(/^\/admin\/login\/\?next=/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(fetch.mock.calls.length).toBe(calls); // unmounted: nothing asks again
  });

  it("the audit trail drops its events when any request is answered 401", async () => {
    serve({
      "/api/v1/audit/": ok({ next: null, results: [event] }),
      "/api/v1/services/": () => new Response(JSON.stringify({ detail: "Authentication credentials were not provided." }), { status: 401 }),
    });
    render(<AuditPage />);
    await waitFor(() => expect(screen.getByTestId("audit-count").textContent).toBe("1 events loaded"));

    const { getJson } = await import("../../lib/api");
    await act(async () => {
      await getJson("/api/v1/services/").catch(() => undefined);
    });

    expect(screen.queryByTestId("audit-count")).toBeNull();
    expect(screen.getByRole("heading", { level: 1 }).textContent).toBe("Audit trail");
    expect(screen.getByTestId("session-ended").textContent).toMatch(/the audit trail is no longer shown/);
  });
});
