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

/** The x scale's span: a single x (one reading) sits in the middle of an hour (or of ±1), not on the left edge. */
export function xRange(xs: readonly number[], min: number, max: number, time: boolean): [number, number] {
  if (xs.length > 0 && xs.every((value) => value === xs[0])) {
    const pad = time ? 1800 : 1;
    return [xs[0] - pad, xs[0] + pad];
  }
  return [min, max];
}

/** A value as the chart's reader would say it: at most 2 decimals, with its unit. */
export function formatValue(value: number, unit = ""): string {
  const rounded = Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 100) / 100;
  return `${rounded.toLocaleString("en-US")}${unit}`;
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
      if (present.length === 1) return `${s.label}: one value, ${formatValue(latest, chart.unit)} at ${formatX(chart, at)}`;
      const numbers = present.map(([v]) => v);
      return (
        `${s.label}: ${present.length} values, ${formatValue(Math.min(...numbers), chart.unit)} to ` +
        `${formatValue(Math.max(...numbers), chart.unit)}, latest ${formatValue(latest, chart.unit)} at ${formatX(chart, at)}`
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
