import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import AuditPage from "../../app/routes/AuditPage";
import { resetSessionForTests } from "../../lib/session";
import { Truncated } from "./Truncated";

const LONG = "clinical-decision-support-sepsis-early-warning-".repeat(3);

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  resetSessionForTests();
});

describe("long text cut to its column", () => {
  it("keeps the whole text in the title tooltip", () => {
    render(<Truncated text={LONG} />);
    const cut = screen.getByText(LONG);
    expect(cut.className).toBe("truncate");
    expect(cut.getAttribute("title")).toBe(LONG);
  });

  it("titles every audit cell with its whole text", async () => {
    const event = { id: 1, recorded_at: "2026-11-27T12:00:00Z", actor_type: "client", actor_name: LONG, action: "read",
      resource_type: "Patient", resource_id: "7", outcome: "success", purpose_of_use: "TREAT", result_count: null,
      served_from_cache: true, request_id: "r" };
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ next: null, results: [event] }), { status: 200 })));
    vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(520);
    vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(390);
    render(<AuditPage />);
    const table = screen.getByRole("table", { name: "Audit events" });
    await waitFor(() => expect(table.textContent).toContain(LONG));
    expect(table.className).toContain("vlist-wide");
    const titles = [...table.querySelectorAll("[role=row]:not(.vlist-head) [role=cell]")].map((cell) => cell.getAttribute("title"));
    expect(titles).toEqual([expect.any(String), `client: ${LONG}`, "read", "Patient 7", "success", "TREAT", "—", "cached"]);
  });
});
