/** The live snapshot the server sends each second on /ws/metrics/ (apps/metrics/selectors.live_snapshot). */
export interface LiveRow {
  service: string;
  name: string;
  rps: number;
  p95_ms: number | null;
  error_rate_pct: number | null;
  /** The limiter's refusals (429) in the window, left out of the figures above; absent from an older server. */
  rate_limited?: number;
  rate_limited_rps?: number;
}

export interface LiveAlert {
  rule: string;
  severity: string;
  message: string;
  since: string;
}

/** A benchmark or optimization run still going, with its progress from 0 to 1. */
export interface LiveWork {
  kind: "benchmark" | "optimization";
  id: number;
  name: string;
  status: string;
  progress: number;
  message: string;
}

/** The Celery worker's heartbeat as the server read it (apps.core.selectors.probe_worker). */
export interface WorkerProbe {
  /** ok or late; null when the server could not read the heartbeat. */
  alive: boolean | null;
  state: "ok" | "late" | "down" | "never" | "unknown";
  last_heartbeat_at: string | null;
  /** By the server's clock when it built the snapshot. */
  last_heartbeat_age_seconds: number | null;
  hostname: string | null;
  max_age_seconds: number;
}

/** The long worker (the benchmarks and inference queues) as /readyz's long_worker check reads it
 * (apps.core.selectors.probe_long_worker), with the replicas whose beacons are fresh. */
export interface LongWorkerProbe {
  status: "ok" | "degraded" | "error" | "unknown";
  detail: string;
  workers: { hostname: string; slots: number; busy: number }[];
}

export interface LiveSnapshot {
  overall: LiveRow;
  services: LiveRow[];
  cache_hit_rate: number | null;
  host: { cpu_pct?: number | null; memory_pct?: number | null; pool_pct?: number | null };
  alerts: LiveAlert[];
  work?: LiveWork[];
  /** Absent from an older server. */
  worker?: WorkerProbe;
  /** Absent from an older server. */
  long_worker?: LongWorkerProbe;
}

const isObject = (value: unknown): value is object => !!value && typeof value === "object" && !Array.isArray(value);

/**
 * Whether a frame's data has every part the live panel reads. Checking `overall` and `services` only let a
 * frame without `alerts` or `host` (or with a null row) through, and the panel's render threw: the whole
 * dashboard went blank. Such a frame is ignored; the last good one stays, ageing.
 */
export function isLiveSnapshot(data: unknown): data is LiveSnapshot {
  if (!isObject(data)) return false;
  const candidate = data as Partial<LiveSnapshot>;
  return (
    isObject(candidate.overall) &&
    Array.isArray(candidate.services) &&
    candidate.services.every(isObject) &&
    Array.isArray(candidate.alerts) &&
    candidate.alerts.every(isObject) &&
    isObject(candidate.host) &&
    (candidate.work === undefined || (Array.isArray(candidate.work) && candidate.work.every(isObject)))
  );
}

/** Snapshots come each second: one older than this is no longer live (the feed dropped, or the server
 * stopped building them: its database away, say, while its heartbeats went on). */
export const STALE_AFTER_MS = 5000;
