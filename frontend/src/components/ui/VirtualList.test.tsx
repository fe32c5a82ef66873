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
