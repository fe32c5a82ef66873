import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { VirtualList } from "./VirtualList";

afterEach(cleanup);

describe("VirtualList", () => {
  it("counts its header as the table's first row, as ARIA does", () => {
    render(
      <VirtualList
        count={100_000}
        rowHeight={36}
        height={520}
        label="Patients"
        header={
          <div role="row" aria-rowindex={1}>
            <span role="columnheader">Name</span>
          </div>
        }
        renderRow={(index) => <span role="cell">row {index}</span>}
      />,
    );
    expect(screen.getByRole("table", { name: "Patients" }).getAttribute("aria-rowcount")).toBe("100001");
    const rows = screen.getAllByRole("row");
    expect(rows[0].getAttribute("aria-rowindex")).toBe("1");
    // jsdom lays nothing out, so how many rows the virtualizer renders varies; each says its place.
    rows.slice(1).forEach((row) => expect(row.textContent).toBe(`row ${Number(row.getAttribute("aria-rowindex")) - 2}`));
  });
});

describe("VirtualList's table structure", () => {
  it("puts nothing with no role between the table and its row groups: the scroller is the rows' group", () => {
    render(
      <VirtualList
        count={50}
        rowHeight={36}
        height={200}
        label="Audit events"
        header={
          <div role="row" aria-rowindex={1}>
            <span role="columnheader">When</span>
          </div>
        }
        renderRow={(index) => <span role="cell">row {index}</span>}
      />,
    );
    const table = screen.getByRole("table", { name: "Audit events" });
    // ARIA allows a table only row groups and rows as children; the focusable scroller had no role.
    expect([...table.children].map((child) => child.getAttribute("role"))).toEqual(["rowgroup", "rowgroup"]);
    const scroller = screen.getByTestId("vlist-scroller");
    expect(scroller.getAttribute("role")).toBe("rowgroup");
    // A table the keyboard scrolls: its scroller is a Tab stop, and says what it is.
    expect(scroller.tabIndex).toBe(0);
    expect(scroller.getAttribute("aria-label")).toBe("Audit events, scrollable");
    expect(scroller.querySelectorAll("[role=rowgroup]").length).toBe(0);
  });
});
