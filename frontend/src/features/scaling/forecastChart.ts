import type { ChartSeries } from "../../components/ui/Chart";
import { epoch } from "../../lib/format";

export interface ForecastPoint {
  at: string;
  p10: number;
  p50: number;
  p90: number;
}

export interface Backtest {
  model: string;
  mase_24: number | null;
  mase_168: number | null;
  smape: number;
  coverage: number;
}

export interface Forecast {
  metric: string;
  created_at: string;
  model: string;
  scores: { criterion?: string; candidates?: Backtest[] };
  points: ForecastPoint[];
  recent: { at: string; value: number }[];
  patterns: { periods?: number[]; peaks?: { name: string; hours?: number[] }[]; daily_peaks?: unknown };
}

/**
 * One time axis for what happened (recent actuals) and what is forecast (P10-P90 band, P50), with an
 * earlier forecast's P50 laid over the actuals it predicted: how good the model has been.
 */
export function forecastSeries(forecast: Forecast, earlier?: { points: ForecastPoint[] } | null) {
  const byTime = new Map<number, (number | null)[]>();
  const row = (at: string) => {
    const key = epoch(at);
    let values = byTime.get(key);
    if (!values) byTime.set(key, (values = [null, null, null, null, null]));
    return values;
  };
  for (const point of forecast.recent) row(point.at)[0] = point.value;
  for (const point of forecast.points) {
    const values = row(point.at);
    values[1] = point.p90;
    values[2] = point.p50;
    values[3] = point.p10;
  }
  for (const point of earlier?.points ?? []) {
    const key = epoch(point.at);
    if (byTime.has(key)) byTime.get(key)![4] = point.p50;
  }
  const x = [...byTime.keys()].sort((a, b) => a - b);
  const column = (i: number) => x.map((at) => byTime.get(at)![i]);
  const series: ChartSeries[] = [
    { label: "actual", values: column(0), color: "var(--fg)" },
    { label: "P90", values: column(1), band: true },
    { label: "P50 forecast", values: column(2) },
    { label: "P10", values: column(3), band: true },
  ];
  if (earlier) series.push({ label: "yesterday's P50", values: column(4), color: "var(--warn)", dash: true });
  return { x, series, bands: [[2, 4]] as [number, number][] };
}

/** The backtest score the model was chosen on (mase_168 when every candidate had a week, else mase_24). */
export function chosenMase(forecast: Forecast): { seasonality: number; value: number | null } {
  const criterion = forecast.scores.criterion === "mase_168" ? "mase_168" : "mase_24";
  const chosen = forecast.scores.candidates?.find((candidate) => candidate.model === forecast.model);
  return { seasonality: criterion === "mase_168" ? 168 : 24, value: chosen?.[criterion] ?? null };
}
