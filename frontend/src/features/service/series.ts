import { getJson, query } from "../../lib/api";
import { epoch } from "../../lib/format";

export interface SeriesResponse {
  metric: string;
  step: number;
  points: [string, number | null][];
}

export const RANGES = {
  "1h": { seconds: 3600, step: 60 },
  "24h": { seconds: 86400, step: 900 },
  "7d": { seconds: 7 * 86400, step: 3600 },
} as const;
export type RangeName = keyof typeof RANGES;

/** Several metrics over one range, aligned on the same time axis for one chart. */
export async function fetchSeries(
  metrics: string[],
  range: RangeName,
  { service, now = new Date(), signal, timeoutMs }: { service?: string; now?: Date; signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<{ x: number[]; values: (number | null)[][] }> {
  const { seconds, step } = RANGES[range];
  const start = new Date(Math.floor(now.getTime() / 1000 / step) * step * 1000 - seconds * 1000 + step * 1000).toISOString();
  // One end for every metric of the chart: left to the server's clock, two requests either side of a step's
  // boundary had different numbers of points, and the longer one's values were drawn against the other's times.
  const end = now.toISOString();
  const responses = await Promise.all(
    metrics.map((metric) => getJson<SeriesResponse>(`/api/v1/metrics/series/${query({ metric, service, start, end, step })}`, signal, timeoutMs)),
  );
  const x = responses[0]?.points.map(([at]) => epoch(at)) ?? [];
  // Each value is placed by its own time (a point the first metric lacks is left out, a missing one is a gap).
  const values = responses.map((response) => {
    const byTime = new Map(response.points.map(([at, value]) => [epoch(at), value]));
    return x.map((at) => byTime.get(at) ?? null);
  });
  return { x, values };
}
