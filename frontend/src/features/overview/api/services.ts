export interface Service {
  id: number;
  name: string;
  slug: string;
  kind: "api" | "inference" | "worker" | "frontend";
  owner_team: string;
  is_active: boolean;
  slo_p95_ms: number;
  slo_p99_ms: number;
  slo_avg_ms: number;
  slo_min_rps: number;
  slo_error_rate_pct: number;
}

export const SERVICES_URL = "/api/v1/services/?limit=500";

export interface SloWindow {
  count: number;
  p95_ms: number | null;
  p99_ms: number | null;
  error_rate_pct: number | null;
  /** Whether the window holds the min_requests needed to judge its p95 and p99 (null verdicts below). */
  latency_judged?: boolean;
  p95_met: boolean | null;
  p99_met: boolean | null;
  error_rate_met: boolean | null;
  error_budget_remaining: number | null;
}

export interface SloStatus {
  service: string;
  name: string;
  /** The requests a window needs for its latency to be judged: the optimizer's minimum. */
  min_requests?: number;
  windows: Record<"1h" | "24h" | "7d", SloWindow>;
}
