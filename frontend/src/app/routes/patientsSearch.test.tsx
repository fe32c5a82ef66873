import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("../../components/ui/Chart", () => ({ Chart: ({ title }: { title: string }) => <figure data-testid="chart">{title}</figure> }));

import { resetSessionForTests } from "../../lib/session";
import PatientsPage from "./PatientsPage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  resetSessionForTests();
});

describe("PatientsPage search", () => {
  it("searches once typing pauses, not at every letter (each search is an audited PHI read)", async () => {
    const searched: string[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (_url: string, init?: RequestInit) => {
        if (init?.method === "POST") searched.push(JSON.parse(String(init.body)).name);
        return new Response(JSON.stringify({ count: 0, offset: 0, results: [] }), { status: 200 });
      }),
    );
    render(<PatientsPage />);
    await waitFor(() => expect(screen.getByTestId("patient-count").textContent).toBe("0 patients"));
    const input = screen.getByRole("searchbox");
    for (const typed of ["s", "sm", "smi", "smit", "smith"]) {
      fireEvent.change(input, { target: { value: typed } });
      await new Promise((resolve) => setTimeout(resolve, 40)); // a quick typist
    }
    await new Promise((resolve) => setTimeout(resolve, 600));
    // Each letter from the second on was posted: "sm", "smi", "smit" and "smith", four entries in the audit trail
    // (and four of the rate limit's requests) for one name.
    expect(searched).toEqual(["smith"]);
  });

  it("counts one patient in the singular", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => new Response(JSON.stringify({ count: 1, offset: 0, results: [] }), { status: 200 })),
    );
    render(<PatientsPage />);
    await waitFor(() => expect(screen.getByTestId("patient-count").textContent).toBe("1 patient"));
  });
});
