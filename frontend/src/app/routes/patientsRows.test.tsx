import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("../../components/ui/Chart", () => ({ Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure> }));

import { resetSessionForTests } from "../../lib/session";
import PatientsPage from "./PatientsPage";

const patient = { id: 7, identifier_system: "urn:mrn", mrn: "M7", family_name: "Doe", given_name: "Jo", birth_date: "1980-01-02", sex: "female" };

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  resetSessionForTests();
});

describe("PatientsPage rows, as a screen reader reads the table", () => {
  it("puts each row's cells in the row itself, not inside a button (whose children are presentational)", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ count: 1, offset: 0, results: [patient] }), { status: 200 })));
    vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(520);
    vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(800);
    render(<PatientsPage />);
    const table = screen.getByRole("grid", { name: "Patients" });
    await waitFor(() => expect(table.textContent).toMatch(/Doe, Jo/));
    const row = within(table).getAllByRole("row")[1];
    // A button's children are presentational: its four "cells" were no cells at all, so the row read as one
    // button and a screen reader's table commands found no Born or Sex column under the headers.
    const cells = row.querySelectorAll("[role=gridcell]");
    expect(cells).toHaveLength(4);
    cells.forEach((cell) => expect(cell.parentElement).toBe(row));
    expect(row.querySelectorAll("button [role=gridcell]")).toHaveLength(0);

    const open = within(row).getByRole("button", { name: "Doe, Jo" });
    expect(open.getAttribute("aria-pressed")).toBe("false");
    fireEvent.click(open);
    expect(open.getAttribute("aria-pressed")).toBe("true");
    expect(screen.getByRole("heading", { level: 2 }).textContent).toMatch(/^Doe, Jo/);
  });
});
