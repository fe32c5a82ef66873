import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("../../components/ui/Chart", () => ({ Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure> }));

import { nextActive } from "../../components/ui/VirtualList";
import { resetSessionForTests } from "../../lib/session";
import PatientsPage from "./PatientsPage";

const patients = ["Doe", "Roe", "Poe"].map((family, i) => ({
  id: i + 1, identifier_system: "urn:mrn", mrn: `M${i}`, family_name: family, given_name: "Jo", birth_date: "1980-01-02", sex: "female",
}));

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  resetSessionForTests();
});

async function renderList() {
  vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ count: 3, offset: 0, results: patients }), { status: 200 })));
  vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(520);
  vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(800);
  render(<PatientsPage />);
  const grid = screen.getByRole("grid", { name: "Patients" });
  await waitFor(() => expect(grid.textContent).toMatch(/Poe, Jo/));
  return grid;
}

/** The row the grid names active, by its patient's name. */
const activeName = (grid: HTMLElement) => document.getElementById(grid.getAttribute("aria-activedescendant")!)!.querySelector(".row-button")!.textContent;

describe("the patient list as a keyboard grid", () => {
  it("is one Tab stop: the grid, not a button per row", async () => {
    const grid = await renderList();
    expect(grid.tabIndex).toBe(0);
    const stops = [...grid.querySelectorAll<HTMLElement>("button, [tabindex]")].filter((element) => element.tabIndex >= 0);
    expect(stops).toEqual([]);
  });

  it("moves the active row with the arrow keys, Home and End, and opens it with Enter", async () => {
    const grid = await renderList();
    grid.focus();
    expect(activeName(grid)).toBe("Doe, Jo");
    fireEvent.keyDown(grid, { key: "ArrowDown" });
    expect(activeName(grid)).toBe("Roe, Jo");
    fireEvent.keyDown(grid, { key: "ArrowDown" });
    fireEvent.keyDown(grid, { key: "ArrowDown" }); // past the last row: stays there
    expect(activeName(grid)).toBe("Poe, Jo");
    fireEvent.keyDown(grid, { key: "ArrowUp" });
    expect(activeName(grid)).toBe("Roe, Jo");
    fireEvent.keyDown(grid, { key: "Home" });
    expect(activeName(grid)).toBe("Doe, Jo");
    fireEvent.keyDown(grid, { key: "End" });
    expect(activeName(grid)).toBe("Poe, Jo");

    fireEvent.keyDown(grid, { key: "Enter" });
    expect(screen.getByRole("heading", { level: 2 }).textContent).toMatch(/^Poe, Jo/);
    expect(within(grid).getByRole("button", { name: "Poe, Jo" }).getAttribute("aria-pressed")).toBe("true");
    expect(document.activeElement).toBe(grid);
  });

  it("leaves other keys alone", async () => {
    const grid = await renderList();
    const tab = fireEvent.keyDown(grid, { key: "Tab" });
    expect(tab).toBe(true); // not prevented: Tab still leaves the grid
    expect(activeName(grid)).toBe("Doe, Jo");
  });
});

describe("nextActive", () => {
  it("keeps within the rows, and pages by the rows on screen", () => {
    expect(nextActive("ArrowDown", 0, 3, 10)).toBe(1);
    expect(nextActive("ArrowUp", 0, 3, 10)).toBe(0);
    expect(nextActive("PageDown", 0, 100, 10)).toBe(10);
    expect(nextActive("PageUp", 5, 100, 10)).toBe(0);
    expect(nextActive("End", 0, 100, 10)).toBe(99);
    expect(nextActive("a", 0, 100, 10)).toBeNull();
    expect(nextActive("ArrowDown", 0, 0, 10)).toBeNull();
  });
});
