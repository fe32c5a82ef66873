import { Link } from "react-router";

import { Chart } from "../../components/ui/Chart";
import { LoadStatus } from "../../components/ui/Status";
import { TableScroll } from "../../components/ui/TableScroll";
import { count, epoch, fixed, when } from "../../lib/format";
import { useJson } from "../../lib/useJson";
import type { RunSummary } from "../../features/benchmarks/types";
import { usePageTitle } from "../../lib/usePageTitle";
import { Truncated } from "../../components/ui/Truncated";

function Verdict({ run }: { run: RunSummary }) {
  if (run.status !== "succeeded") return <span className="muted">{run.status}</span>;
  return run.passed ? <span className="ok">every gate met</span> : <span className="bad">a gate missed</span>;
}

export default function BenchmarksPage() {
  usePageTitle("Benchmarks");
  const state = useJson<{ results: RunSummary[] }>("/api/v1/benchmarks/runs/?limit=100", { refreshMs: 15000 });
  const runs = state.status === "ready" ? state.data.results : [];
  const finished = runs.filter((run) => run.status === "succeeded").reverse();
  // One line per plan: plans differ in target, mix and load (a /healthz plan's 6 ms beside a patient card's
  // 500 ms), and one line through every run drew changes between plans as regressions that never happened.
  const plans = [...new Map(finished.map((run) => [run.plan_id, run.plan])).entries()];
  const series = plans.map(([planId, name]) => ({
    label: `${name} p95 ms`,
    values: finished.map((run) => (run.plan_id === planId ? (run.summary.p95_ms ?? null) : null)),
    spanGaps: true, // another plan's runs between two of this one's are no gap in it
  }));

  return (
    <section aria-labelledby="benchmarks-title">
      <h1 id="benchmarks-title">Benchmarks</h1>
      <LoadStatus state={state} what="benchmark runs" />
      {finished.length > 0 ? (
        <Chart
          title="p95 of successive runs (dashed lines: regressions)"
          x={finished.map((run) => epoch(run.created_at))}
          unit=" ms"
          series={series}
          markers={finished.filter((run) => run.regressions.length).map((run) => epoch(run.created_at))}
        />
      ) : null}
      {state.status === "ready" && runs.length === 0 ? (
        <p className="muted">No runs yet: start one from a plan in the admin, or with <code>manage.py bench run</code>.</p>
      ) : null}
      {runs.length ? (
        <TableScroll label="Benchmark runs">
          <table className="table" data-testid="runs-table">
            <caption className="sr-only">Benchmark runs, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Plan</th>
                <th scope="col">Started</th>
                <th scope="col" className="num">Requests</th>
                <th scope="col" className="num">req/s</th>
                <th scope="col" className="num">p95</th>
                <th scope="col">SLO gates</th>
                <th scope="col">Regression</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={run.id}>
                  <th scope="row">
                    <Link to={`/benchmarks/${run.id}`}>#{run.id}</Link>
                  </th>
                  <td>
                    <Truncated text={run.plan} /> <span className="muted">({run.kind})</span>
                  </td>
                  <td>{when(run.created_at)}</td>
                  <td className="num">{run.summary.requests === undefined ? "—" : count(run.summary.requests)}</td>
                  <td className="num">{fixed(run.summary.rps)}</td>
                  <td className="num">{fixed(run.summary.p95_ms, 1, " ms")}</td>
                  <td>
                    <Verdict run={run} />
                  </td>
                  <td>
                    {run.regressions.map((r) => (
                      <span key={r.id} className="bad">
                        +{r.change_pct.toFixed(1)}%{r.acknowledged ? " (acknowledged)" : ""}
                      </span>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
    </section>
  );
}
