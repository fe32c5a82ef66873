import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { LoadStatus, sentence, signInUrl } from "./Status";

afterEach(cleanup);

describe("sentence", () => {
  it("adds a period only where the message has no closing punctuation", () => {
    expect(sentence("Not found")).toBe("Not found.");
    expect(sentence("Authentication credentials were not provided.")).toBe("Authentication credentials were not provided.");
    expect(sentence("Is it there? ")).toBe("Is it there?");
  });
});

describe("LoadStatus", () => {
  it("says a permission is missing on a 403, with one period between sentences", () => {
    const message = "You do not have permission to perform this action.";
    render(<LoadStatus state={{ status: "error", message, code: 403 }} what="patients" />);
    const text = screen.getByRole("alert").textContent!;
    expect(text).toBe(`Could not load patients: ${message} Your account lacks the permission for it; ask an administrator.`);
    expect(text).not.toContain("..");
  });

  it("links a 401 to the sign-in, coming back to this page", () => {
    window.history.pushState({}, "", "/dashboard/patients?name=smi");
    render(<LoadStatus state={{ status: "error", message: "Authentication credentials were not provided.", code: 401 }} what="patients" />);
    expect(screen.getByRole("alert").textContent).not.toContain("..");
    const link = screen.getByRole("link", { name: "Sign in again" });
    expect(link.getAttribute("href")).toBe("/admin/login/?next=%2Fdashboard%2Fpatients%3Fname%3Dsmi");
    expect(signInUrl({ pathname: "/dashboard/", search: "" })).toBe("/admin/login/?next=%2Fdashboard%2F");
  });

  it("shows loading, and nothing once ready", () => {
    const { container, rerender } = render(<LoadStatus state={{ status: "loading" }} what="runs" />);
    expect(container.textContent).toBe("Loading runs…");
    rerender(<LoadStatus state={{ status: "ready", data: 1 }} what="runs" />);
    expect(container.textContent).toBe("");
  });
});

describe("LoadError with field messages", () => {
  it("lists each field's messages readably, by a label or the field's name in words", () => {
    render(
      <LoadStatus
        state={{ status: "error", message: "Invalid input.", code: 400, fields: { since: ["Enter a valid date/time."], non_field_errors: ["Since is after until."] } }}
        what="events"
      />,
    );
    const items = screen.getAllByRole("listitem").map((item) => item.textContent);
    expect(items).toEqual(["Since: Enter a valid date/time.", "Since is after until."]);
    expect(screen.getByRole("alert").textContent).toMatch(/^Could not load events: Invalid input\./);
  });
});

describe("LoadStatus after a failed refresh", () => {
  it("says the data shown is older, and why", () => {
    render(<LoadStatus state={{ status: "ready", data: {}, refreshError: { message: "The database is unavailable; retry shortly.", code: 503 } }} what="cache namespaces" />);
    expect(screen.getByRole("status").textContent).toBe(
      "Could not refresh cache namespaces: The database is unavailable; retry shortly. Showing what was loaded before; trying again.",
    );
  });
});
