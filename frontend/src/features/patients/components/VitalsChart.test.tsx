import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { ChartProps } from "../../../components/ui/Chart";

// uPlot draws on a canvas jsdom does not have: the charts' props are kept instead.
const charts: ChartProps[] = [];
vi.mock("../../../components/ui/Chart", () => ({
  Chart: (props: ChartProps) => {
    charts.push(props);
    return <figure data-testid="chart">{props.title}</figure>;
  },
}));

import { VitalsChart } from "./VitalsChart";

const PATIENT = { id: 7, identifier_system: "urn:oid:1.2", mrn: "M7", family_name: "Doe", given_name: "Jane", birth_date: "1970-01-01", sex: "female" };

function reading(id: number, at: string, value: number, status: string) {
  return { id, code: "8867-4", display: "Heart rate", value, unit: "/min", effective_at: at, status };
}

afterEach(() => {
  cleanup();
  charts.length = 0;
  vi.unstubAllGlobals();
});

describe("VitalsChart", () => {
  it("plots no result entered in error or cancelled", async () => {
    const results = [
      reading(3, "2026-12-05T10:00:00Z", 300, "entered-in-error"),
      reading(2, "2026-12-05T09:00:00Z", 80, "final"),
      reading(1, "2026-12-05T08:00:00Z", 250, "cancelled"),
    ];
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => new Response(JSON.stringify({ results }), { status: 200, headers: { "Content-Type": "application/json" } })),
    );
    render(<VitalsChart patient={PATIENT} />);
    await waitFor(() => expect(screen.getByTestId("chart")).toBeTruthy());
    const chart = charts[charts.length - 1];
    expect(chart.title).toBe("Heart rate (1 reading)");
    expect(chart.series.map((s) => s.values)).toEqual([[80]]);
  });
});
