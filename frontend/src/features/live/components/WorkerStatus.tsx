import { ago } from "../../../lib/format";
import type { LongWorkerProbe, WorkerProbe } from "../snapshot";

/**
 * What the Overview says of the Celery worker (benchmarks, forecasts, the heartbeat itself run there): alive,
 * late or not answering, with its last heartbeat's age, or that no worker answered at all. The age is the
 * server's reading plus the time since this browser received it, so another clock's skew plays no part.
 */
export function workerText(worker: WorkerProbe, sinceReceivedMs: number): { text: string; tone: "ok" | "warn" | "bad" | "muted" } {
  const age = worker.last_heartbeat_age_seconds === null ? null : ago(worker.last_heartbeat_age_seconds * 1000 + Math.max(0, sinceReceivedMs));
  const last = age === null ? "" : ` · last heartbeat ${age} ago${worker.hostname ? ` from ${worker.hostname}` : ""}`;
  switch (worker.state) {
    case "ok":
      return { text: `Worker: alive${last}`, tone: "ok" };
    case "late":
      return { text: `Worker: late${last}`, tone: "warn" };
    case "down":
      return { text: `Worker: not answering${last}`, tone: "bad" };
    case "never":
      return { text: "Worker: no worker answered (no heartbeat in the last day)", tone: "bad" };
    default:
      return { text: "Worker: unknown (the server could not read its heartbeat)", tone: "muted" };
  }
}

export function WorkerStatus({ worker, sinceReceivedMs }: { worker: WorkerProbe | undefined; sinceReceivedMs: number }) {
  if (!worker || typeof worker !== "object") return null; // an older server sends none
  const { text, tone } = workerText(worker, sinceReceivedMs);
  return (
    <p className={tone} data-testid="worker-status">
      {text}
    </p>
  );
}

/**
 * What the Overview says of the long worker (benchmark runs, model profiling, optimizer steps, forecasts): the
 * default worker's line alone read "alive" while the long one was gone and benchmark runs waited for ever.
 */
export function longWorkerText(probe: LongWorkerProbe): { text: string; tone: "ok" | "warn" | "bad" | "muted" } {
  const workers = Array.isArray(probe.workers) ? probe.workers : [];
  const slots = workers.reduce((sum, worker) => sum + worker.slots, 0);
  const busy = workers.reduce((sum, worker) => sum + Math.min(worker.busy, worker.slots), 0);
  const replicas = `${workers.length} worker${workers.length === 1 ? "" : "s"}, ${busy} of ${slots} slots busy`;
  switch (probe.status) {
    case "ok":
      if (workers.length === 0) return { text: "Long worker: alive", tone: "ok" };
      return { text: `Long worker: ${busy >= slots ? "busy with long work" : "alive"} · ${replicas}`, tone: "ok" };
    case "degraded":
      if (workers.length === 0) return { text: `Long worker: gone · ${probe.detail}`, tone: "bad" };
      return { text: `Long worker: needs attention · ${replicas} · ${probe.detail}`, tone: "warn" };
    default:
      return { text: "Long worker: unknown (the server could not read its heartbeat)", tone: "muted" };
  }
}

export function LongWorkerStatus({ probe }: { probe: LongWorkerProbe | undefined }) {
  if (!probe || typeof probe !== "object") return null; // an older server sends none
  const { text, tone } = longWorkerText(probe);
  return (
    <p className={tone} data-testid="long-worker-status">
      {text}
    </p>
  );
}
