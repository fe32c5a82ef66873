import { cleanup, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("../../components/ui/Chart", () => ({ Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure> }));

import { resetSessionForTests } from "../../lib/session";
import PatientsPage from "./PatientsPage";

const patient = { id: 7, identifier_system: "urn:mrn", mrn: "M7", family_name: "Doe", given_name: "Jo", birth_date: "1992-03-14", sex: "female" };

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  resetSessionForTests();
});

describe("PatientsPage on a phone's width (390 px)", () => {
  it("scrolls sideways in its box and titles every cell with its whole text, as the Audit list does", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ count: 1, offset: 0, results: [patient] }), { status: 200 })));
    vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(520);
    vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(390);
    render(<PatientsPage />);
    const table = screen.getByRole("grid", { name: "Patients" });
    await waitFor(() => expect(table.textContent).toMatch(/Doe, Jo/));
    // The old list: no vlist-wide (its columns squeezed to the phone's width), and "1992…" with no tooltip.
    expect(table.className).toContain("vlist-wide");
    const row = within(table).getAllByRole("row")[1];
    const cells = [...row.querySelectorAll("[role=gridcell]")];
    expect(within(cells[0] as HTMLElement).getByRole("button").getAttribute("title")).toBe("Doe, Jo");
    expect(cells.slice(1).map((cell) => cell.getAttribute("title"))).toEqual(["1992-03-14", "female", "#7"]);
  });
});
