export interface RegressionInfo {
  id: number;
  run: number;
  change_pct: number;
  p_value: number;
  threshold_pct: number;
  baseline: number;
  current: number;
  detected_at: string;
  acknowledged: boolean;
}

export interface RunSummary {
  id: number;
  plan: string;
  plan_id: number;
  kind: string;
  service: string;
  status: string;
  passed: boolean | null;
  created_at: string;
  finished_at: string | null;
  progress: number;
  summary: { requests?: number; rps?: number; p50_ms?: number; p95_ms?: number; p99_ms?: number; error_rate_pct?: number };
  regressions: RegressionInfo[];
}

/**
 * Per-second history: seconds since the start, users, req/s and failures/s (Locust's), and the p95 of that
 * second's successful requests (our own samples; null where none succeeded).
 */
export interface TimelinePoint {
  t: number;
  users: number;
  rps: number;
  errors_per_s: number;
  p95_ms: number | null;
}

export interface RunDetail extends RunSummary {
  timeline: TimelinePoint[];
  /** The seconds each timeline point covers: 1, or more for a run past 1,500 seconds (the API merges them). */
  timeline_step_s?: number;
  histogram: [number, number][];
  verdicts: { gate: string; measured: number | null; limit: number; passed: boolean }[];
  findings: Record<string, Record<string, unknown>>;
  error: string;
  report_url: string;
}
