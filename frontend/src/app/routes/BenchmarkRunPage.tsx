import { useEffect, useState } from "react";
import { Link, useParams } from "react-router";

import { Chart } from "../../components/ui/Chart";
import { LoadStatus } from "../../components/ui/Status";
import { TableScroll } from "../../components/ui/TableScroll";
import { fixed, when } from "../../lib/format";
import { useJson } from "../../lib/useJson";
import { usePageTitle } from "../../lib/usePageTitle";
import type { RunDetail } from "../../features/benchmarks/types";

/** A run in one of these states changes no more. */
const FINISHED = new Set(["succeeded", "failed", "cancelled", "invalid"]);

export default function BenchmarkRunPage() {
  const { runId = "" } = useParams();
  // Refreshed every 5 s while it runs, not after: a finished run left open (timeline, histogram and all)
  // was fetched again 720 times an hour for as long as the tab stayed open.
  const [finished, setFinished] = useState(false);
  const state = useJson<RunDetail>(`/api/v1/benchmarks/runs/${encodeURIComponent(runId)}/`, { refreshMs: finished ? 0 : 5000 });
  const status = state.status === "ready" ? state.data.status : null;
  useEffect(() => setFinished(status !== null && FINISHED.has(status)), [status]);
  usePageTitle(`Run #${runId}`);
  if (state.status !== "ready") return <LoadStatus state={state} what={`run #${runId}`} />;
  const run = state.data;
  const t = run.timeline.map((point) => point.t);

  return (
    <section aria-labelledby="run-title">
      <p>
        <Link to="/benchmarks">← Benchmarks</Link>
      </p>
      <h1 id="run-title">
        Run #{run.id}: {run.plan}
      </h1>
      <p>
        {run.kind} against {run.service}, {run.status}
        {run.status === "running" ? ` (${Math.round(run.progress * 100)}%)` : ""}, started {when(run.created_at)}.{" "}
        <a href={run.report_url}>HTML report</a>
      </p>
      <LoadStatus state={state} what={`run #${runId}`} />
      {run.error ? <p role="alert" className="error">{run.error}</p> : null}
      {run.regressions.map((r) => (
        <p key={r.id} role="alert" className="bad">
          Regression: median latency {r.baseline.toFixed(1)} → {r.current.toFixed(1)} ms (+{r.change_pct.toFixed(1)}%, p = {r.p_value.toPrecision(2)}, threshold {r.threshold_pct.toFixed(1)}%).
        </p>
      ))}
      <h2>SLO gates</h2>
      <TableScroll label="SLO gates">
        <table className="table" data-testid="verdicts">
          <thead>
            <tr>
              <th scope="col">Gate</th>
              <th scope="col" className="num">Measured</th>
              <th scope="col" className="num">Limit</th>
              <th scope="col">Verdict</th>
            </tr>
          </thead>
          <tbody>
            {run.verdicts.map((v) => (
              <tr key={v.gate}>
                <th scope="row">{v.gate}</th>
                <td className="num">{fixed(v.measured, 2)}</td>
                <td className="num">{fixed(v.limit, 2)}</td>
                <td className={v.passed ? "ok" : "bad"}>{v.passed ? "met" : "missed"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableScroll>
      <div className="grid">
        {/* One unit per chart: milliseconds, requests per second and users on one axis read as one number. */}
        <Chart title={latencyTitle(run.timeline_step_s ?? 1)} x={t} time={false} unit=" ms" series={[{ label: "p95 ms", values: run.timeline.map((p) => p.p95_ms) }]} />
        <Chart title="Throughput over the run" x={t} time={false} unit=" req/s" series={[{ label: "req/s", values: run.timeline.map((p) => p.rps), color: "var(--ok)" }]} />
        <Chart
          title="Virtual users over the run"
          x={t}
          time={false}
          valueKind="count"
          height={140}
          series={[{ label: "users", values: run.timeline.map((p) => p.users), color: "var(--muted)" }]}
        />
        <Chart
          title="Latency histogram (requests per ms bucket)"
          x={run.histogram.map(([ms]) => ms)}
          time={false}
          kind="bars"
          valueKind="count"
          series={[{ label: "requests", values: run.histogram.map(([, n]) => n) }]}
        />
      </div>
    </section>
  );
}

/** What a latency point is: past 1,500 seconds the API merges seconds, each point the highest second's p95. */
export function latencyTitle(step: number): string {
  return step > 1
    ? `Latency over the run (p95 of the successes: the highest second of each ${step} s)`
    : "Latency over the run (p95 of each second's successes)";
}
