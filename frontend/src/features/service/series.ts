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
  { service, now = new Date() }: { service?: string; now?: Date } = {},
): Promise<{ x: number[]; values: (number | null)[][] }> {
  const { seconds, step } = RANGES[range];
  const start = new Date(Math.floor(now.getTime() / 1000 / step) * step * 1000 - seconds * 1000 + step * 1000).toISOString();
  const responses = await Promise.all(
    metrics.map((metric) => getJson<SeriesResponse>(`/api/v1/metrics/series/${query({ metric, service, start, step })}`)),
  );
  const x = responses[0]?.points.map(([at]) => epoch(at)) ?? [];
  return { x, values: responses.map((response) => response.points.map(([, value]) => value)) };
}
