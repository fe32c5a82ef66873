/** What a chart says in words: its text alternative and the points a line cannot show (pure, tested without a canvas). */

export interface ChartText {
  title: string;
  x: number[];
  series: { label: string; values: (number | null)[]; band?: boolean }[];
  unit?: string;
  time?: boolean;
  xLabels?: string[];
}

/**
 * Indexes of values with no value on either side: a line needs two points, so these drew nothing at
 * all (a series of one reading was an empty chart). They are drawn as dots.
 */
export function isolatedIndexes(values: readonly (number | null | undefined)[]): number[] {
  const isolated: number[] = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) return;
    const before = i > 0 ? values[i - 1] : null;
    const after = i < values.length - 1 ? values[i + 1] : null;
    if ((before === null || before === undefined) && (after === null || after === undefined)) isolated.push(i);
  });
  return isolated;
}

/**
 * The x scale's span: a single x (one reading) is shown with the hour before it, and never past `now` (ms)
 * by more than a minute of margin, so its dot is not on the edge. It sat in the middle of an hour, half of
 * which was drawn into the future.
 */
export function xRange(xs: readonly number[], min: number, max: number, time: boolean, now: number = Date.now()): [number, number] {
  if (xs.length > 0 && xs.every((value) => value === xs[0])) {
    if (!time) return [xs[0] - 1, xs[0] + 1];
    const at = xs[0];
    const end = Math.min(at + 1800, Math.max(at + 60, Math.floor(now / 1000)));
    return [end - 3600, end];
  }
  return [min, max];
}

/** What a value axis counts: whole things (requests, failures), a percentage, or any number. */
export type ValueKind = "count" | "percent" | "number";

/**
 * The value axis' span, or null for uPlot's own. Nothing but zeros (or nothing at all) is 0 to 1, not the
 * -1 to 1 that put a "-1 requests" tick under it; counts and percentages start at 0, and a percentage never
 * goes past 100 (a P90 band of 104% CPU).
 */
export function yRange(min: number | null, max: number | null, kind: ValueKind): [number, number] | null {
  const none = min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max);
  if (none || (min === 0 && max === 0)) return [0, 1];
  if (kind === "number") return null;
  const low = Math.min(0, min);
  const high = Math.round(max * 1.1 * 1e6) / 1e6; // 50 * 1.1 is 55.00000000000001, whose ceiling is 56
  if (kind === "count") return [Math.floor(low), Math.max(1, Math.ceil(high))];
  return [low, Math.min(100, Math.ceil(high))];
}

/** A count's ticks: whole numbers only (a "0.5 requests" tick was drawn between 0 and 1). */
export const COUNT_INCREMENTS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1_000, 2_000, 2_500, 5_000, 10_000, 20_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];

/**
 * The legend rows to hide: a band's edges are drawn as its fill, with no line of their own. uPlot leaves the
 * x series out of a legend that is not live, so the rows are the series one for one; the hook hid row i + 1,
 * which hid the P50 line and listed the undrawn P10 and P90. An x row, where there is one, comes first.
 */
export function hiddenLegendRows(series: readonly { band?: boolean }[], rowCount: number): number[] {
  const offset = rowCount - series.length;
  if (offset !== 0 && offset !== 1) return [];
  return series.flatMap((s, i) => (s.band ? [i + offset] : []));
}

/** A value as the chart's reader would say it: at most 2 decimals, with its unit. */
export function formatValue(value: number, unit = ""): string {
  const rounded = Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 100) / 100;
  return `${rounded.toLocaleString("en-US")}${unit}`;
}

/**
 * A value as the legend shows it under the cursor: "no data" for a step where nothing was measured (null), never
 * 0. The series answer null before a service's first request and where a percentile is undefined.
 */
export function legendValue(value: number | null | undefined, unit = ""): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "no data" : formatValue(value, unit);
}

function formatX(chart: ChartText, i: number): string {
  const at = chart.x[i];
  if (chart.xLabels) return chart.xLabels[at] ?? String(at);
  if (chart.time ?? true) return new Date(at * 1000).toLocaleString(undefined, { timeZoneName: "short" });
  return formatValue(at);
}

/** True when there is nothing to draw: no x at all, or no series with a single value. */
export function hasNoValues(chart: Pick<ChartText, "x" | "series">): boolean {
  return chart.x.length === 0 || chart.series.every((s) => s.values.every((v) => v === null || v === undefined));
}

/**
 * The chart's text alternative: per series its number of values, range, latest value and when; one
 * reading is said as such. A screen reader heard only the title and the series' names before.
 */
export function describeChart(chart: ChartText): string {
  if (hasNoValues(chart)) return `${chart.title}: no data.`;
  const first = formatX(chart, 0);
  const last = formatX(chart, chart.x.length - 1);
  const span = chart.x.length === 1 ? `at ${first}` : `from ${first} to ${last}`;
  const parts = chart.series
    .filter((s) => !s.band)
    .map((s) => {
      const present = s.values.map((v, i) => [v, i] as const).filter((pair): pair is readonly [number, number] => pair[0] !== null && pair[0] !== undefined);
      if (present.length === 0) return `${s.label}: no data`;
      const [latest, at] = present[present.length - 1];
      // Steps with nothing measured are said as such: left unsaid, "0 to 2" read as if they had been 0.
      const missing = s.values.length - present.length;
      const gaps = missing > 0 ? `, no data at ${missing} of ${s.values.length} times` : "";
      if (present.length === 1) return `${s.label}: one value, ${formatValue(latest, chart.unit)} at ${formatX(chart, at)}${gaps}`;
      const numbers = present.map(([v]) => v);
      return (
        `${s.label}: ${present.length} values, ${formatValue(Math.min(...numbers), chart.unit)} to ` +
        `${formatValue(Math.max(...numbers), chart.unit)}, latest ${formatValue(latest, chart.unit)} at ${formatX(chart, at)}${gaps}`
      );
    });
  return `${chart.title}, ${span}. ${parts.join("; ")}.`;
}

/** One reading, said under the chart (the dot alone has no number on it); null for more. */
export function singleReading(chart: ChartText): string | null {
  if (chart.x.length !== 1) return null;
  const values = chart.series
    .filter((s) => !s.band && s.values[0] !== null && s.values[0] !== undefined)
    .map((s) => `${s.label} ${formatValue(s.values[0] as number, chart.unit)}`);
  return values.length ? `One reading, at ${formatX(chart, 0)}: ${values.join(", ")}.` : null;
}
