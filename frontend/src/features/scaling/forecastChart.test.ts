import { describe, expect, it } from "vitest";

import { chosenMase, forecastSeries, type Forecast } from "./forecastChart";

const forecast: Forecast = {
  metric: "request_rate",
  created_at: "2026-11-27T12:00:00Z",
  model: "holt_winters",
  scores: {},
  patterns: {},
  recent: [
    { at: "2026-11-27T10:00:00Z", value: 5 },
    { at: "2026-11-27T11:00:00Z", value: 7 },
  ],
  points: [
    { at: "2026-11-27T12:00:00Z", p10: 6, p50: 8, p90: 10 },
    { at: "2026-11-27T13:00:00Z", p10: 7, p50: 9, p90: 12 },
  ],
};

describe("forecastSeries", () => {
  it("puts actuals and the forecast band on one time axis", () => {
    const { x, series, bands } = forecastSeries(forecast);
    expect(x).toEqual([10, 11, 12, 13].map((h) => Date.parse(`2026-11-27T${h}:00:00Z`) / 1000));
    expect(series.map((s) => s.label)).toEqual(["actual", "P90", "P50 forecast", "P10"]);
    expect(series[0].values).toEqual([5, 7, null, null]);
    expect(series[2].values).toEqual([null, null, 8, 9]);
    expect(bands).toEqual([[2, 4]]); // P90 down to P10
  });

  it("lays yesterday's forecast over the actuals it predicted, and nowhere else", () => {
    const earlier = { points: [{ at: "2026-11-27T11:00:00Z", p10: 5, p50: 6.5, p90: 8 }, { at: "2026-11-26T01:00:00Z", p10: 1, p50: 2, p90: 3 }] };
    const { x, series } = forecastSeries(forecast, earlier);
    expect(x).toHaveLength(4);
    expect(series[4]).toMatchObject({ label: "yesterday's P50", dash: true, values: [null, 6.5, null, null] });
  });
});

describe("chosenMase", () => {
  const candidates = [
    { model: "seasonal_naive", mase_24: 0.9, mase_168: 1.1, smape: 12, coverage: 0.8 },
    { model: "holt_winters", mase_24: 0.7, mase_168: 0.6, smape: 10, coverage: 0.82 },
  ];

  it("gives the chosen model's score on the criterion it was chosen on", () => {
    expect(chosenMase({ ...forecast, scores: { criterion: "mase_168", candidates } })).toEqual({ seasonality: 168, value: 0.6 });
    expect(chosenMase({ ...forecast, scores: { criterion: "mase_24", candidates } })).toEqual({ seasonality: 24, value: 0.7 });
  });

  it("falls back to m=24 for forecasts stored without a criterion, and to nothing without candidates", () => {
    expect(chosenMase({ ...forecast, scores: { candidates } })).toEqual({ seasonality: 24, value: 0.7 });
    expect(chosenMase(forecast)).toEqual({ seasonality: 24, value: null });
  });
});
