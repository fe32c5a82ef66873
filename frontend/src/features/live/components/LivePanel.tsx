import { TableScroll } from "../../../components/ui/TableScroll";
import { ago, clockTime, fixed } from "../../../lib/format";
import { useThrottledText } from "../../../lib/useThrottledText";
import type { ConnectionState } from "../../../lib/liveFeed";
import { STALE_AFTER_MS, type LiveRow, type LiveSnapshot } from "../snapshot";
import { LongWorkerStatus, WorkerStatus } from "./WorkerStatus";

/** The last minute's overall figures as a sentence, for the screen reader's polite live region. */
export function liveSummary(row: LiveRow): string {
  return `Last minute, ${row.name}: ${fixed(row.rps, 1)} requests per second, p95 ${fixed(row.p95_ms, 1, " ms")}, errors ${fixed(row.error_rate_pct, 2, "%")}.`;
}

/**
 * The overall figures, read out politely at most once a minute (ANNOUNCE_EVERY_MS): the table beside it
 * changes every second and is no live region, so a screen reader is neither flooded nor left unaware.
 */
function LiveSummary({ row, now, stale }: { row: LiveRow; now: number; stale: boolean }) {
  // Stale figures are no news: the banner's own status says the feed stopped.
  const text = useThrottledText(stale ? "" : liveSummary(row), now);
  return (
    <p className="sr-only" aria-live="polite" aria-atomic="true" data-testid="live-summary">
      {text}
    </p>
  );
}

function Row({ row }: { row: LiveRow }) {
  return (
    <tr>
      <th scope="row">{row.name}</th>
      <td className="num">{fixed(row.rps, 1)}</td>
      <td className="num">{fixed(row.p95_ms, 1, " ms")}</td>
      <td className="num">{fixed(row.error_rate_pct, 2, "%")}</td>
      <td className="num">{fixed(row.rate_limited_rps, 1)}</td>
    </tr>
  );
}

/**
 * The last minute, refreshed each second: traffic per service, the cache, the host, firing alerts and
 * the benchmark and optimization runs still going, with their progress. Each snapshot says when it
 * arrived; one that is no longer live says so. The last numbers stayed on screen, under "No alert is
 * firing", for as long as the feed was down or the server sent heartbeats without snapshots.
 */
export function LivePanel({
  snapshot,
  receivedAt = null,
  now = Date.now(),
  connection = "open",
}: {
  snapshot: LiveSnapshot | null;
  /** When this browser received the snapshot (its own clock), or null when unknown. */
  receivedAt?: number | null;
  now?: number;
  connection?: ConnectionState;
}) {
  if (!snapshot) {
    return <p className="muted">Waiting for the first live snapshot…</p>;
  }
  const hitRate = snapshot.cache_hit_rate === null ? null : snapshot.cache_hit_rate * 100;
  const stale = receivedAt !== null && (connection === "reconnecting" || now - receivedAt > STALE_AFTER_MS);
  const asOf = receivedAt === null ? null : clockTime(receivedAt);
  return (
    <div className={stale ? "live-stale" : undefined}>
      {stale ? (
        <div className="stale-banner" data-testid="live-stale">
          {/* The live region holds the news, not the age: that would be read out again every second. */}
          <strong role="status">
            Not live: {connection === "reconnecting" ? "the live feed is reconnecting" : "no new figures from the server"}.
          </strong>{" "}
          These figures and alerts are from {asOf}, {ago(now - (receivedAt ?? now))} ago.
        </div>
      ) : asOf ? (
        <p className="muted" data-testid="live-as-of">
          As of {asOf}
        </p>
      ) : null}
      <WorkerStatus worker={snapshot.worker} sinceReceivedMs={receivedAt === null ? 0 : now - receivedAt} />
      <LongWorkerStatus probe={snapshot.long_worker} />
      <section aria-labelledby="alerts-title">
        <h2 id="alerts-title">Alerts</h2>
        {snapshot.alerts.length === 0 ? (
          <p className="muted" data-testid="no-alerts">
            {stale ? `No alert was firing at ${asOf}; nothing is known since.` : "No alert is firing."}
          </p>
        ) : (
          <ul role="list" data-testid="alerts">
            {snapshot.alerts.map((alert) => (
              <li key={alert.rule} role="alert">
                <strong>{alert.severity}</strong> {alert.rule}: {alert.message}
              </li>
            ))}
          </ul>
        )}
      </section>
      {snapshot.work && snapshot.work.length > 0 && (
        <section aria-labelledby="work-title">
          <h2 id="work-title">Running</h2>
          <ul role="list" data-testid="work">
            {snapshot.work.map((item) => (
              <li key={`${item.kind}-${item.id}`}>
                <label htmlFor={`work-${item.kind}-${item.id}`}>
                  {item.kind === "benchmark" ? "Benchmark" : "Optimization"} #{item.id} {item.name} ({item.status})
                  {item.message ? `: ${item.message}` : ""}
                </label>{" "}
                <progress id={`work-${item.kind}-${item.id}`} max={1} value={item.progress}>
                  {Math.round(item.progress * 100)}%
                </progress>
              </li>
            ))}
          </ul>
        </section>
      )}
      <h2>Last minute</h2>
      <TableScroll label="Last minute per service">
        <table className="table">
          <caption className="sr-only">
            Requests served per second, their p95 latency and error rate, and requests refused by the rate limiter (429)
            per second, over the last minute
          </caption>
          <thead>
            <tr>
              <th scope="col">Service</th>
              <th scope="col" className="num">req/s</th>
              <th scope="col" className="num">p95</th>
              <th scope="col" className="num">errors</th>
              <th scope="col" className="num" title="Requests refused by the rate limiter, left out of the other columns">
                429/s
              </th>
            </tr>
          </thead>
          <tbody>
            {snapshot.services.map((row) => (
              <Row key={row.service} row={row} />
            ))}
            <Row row={snapshot.overall} />
          </tbody>
        </table>
      </TableScroll>
      <LiveSummary row={snapshot.overall} now={now} stale={stale} />
      <p className="muted" data-testid="host">
        Cache hit rate {fixed(hitRate, 1, "%")} · CPU {fixed(snapshot.host.cpu_pct, 0, "%")} · memory{" "}
        {fixed(snapshot.host.memory_pct, 0, "%")} · pool {fixed(snapshot.host.pool_pct, 0, "%")}
      </p>
    </div>
  );
}
