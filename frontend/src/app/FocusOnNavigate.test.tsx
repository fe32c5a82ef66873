import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { Link, MemoryRouter, Route, Routes } from "react-router";
import { afterEach, describe, expect, it } from "vitest";

import { usePageTitle } from "../lib/usePageTitle";
import { FocusOnNavigate } from "./FocusOnNavigate";

afterEach(cleanup);

function Page({ name }: { name: string }) {
  usePageTitle(name);
  return <h1>{name}</h1>;
}

function Shell() {
  return (
    <MemoryRouter initialEntries={["/"]}>
      <FocusOnNavigate targetId="main" />
      <nav>
        <Link to="/">Overview</Link>
        <Link to="/cache">Cache</Link>
      </nav>
      <main id="main" tabIndex={-1}>
        <Routes>
          <Route path="/" element={<Page name="Overview" />} />
          <Route path="/cache" element={<Page name="Cache" />} />
        </Routes>
      </main>
    </MemoryRouter>
  );
}

describe("navigating between pages", () => {
  it("moves focus to the main region and names the page in the title", () => {
    render(<Shell />);
    expect(document.activeElement).toBe(document.body); // the first page load leaves focus alone
    expect(document.title).toBe("Overview · Control plane · Dashboard");
    const link = screen.getByRole("link", { name: "Cache" });
    link.focus();
    fireEvent.click(link);
    expect(screen.getByRole("heading", { name: "Cache" })).toBeTruthy();
    expect(document.activeElement?.id).toBe("main");
    expect(document.title).toBe("Cache · Control plane · Dashboard");
  });
});
