import { useMemo, useState } from "react";

import { Chart } from "../../components/ui/Chart";
import { LoadStatus } from "../../components/ui/Status";
import { TableScroll } from "../../components/ui/TableScroll";
import { count, epoch, percent, seconds, when } from "../../lib/format";
import { useJson } from "../../lib/useJson";
import { usePageTitle } from "../../lib/usePageTitle";
import { Truncated } from "../../components/ui/Truncated";

interface Policy {
  id: number;
  scope: string;
  description: string;
  enabled: boolean;
  requests: number;
  effective_requests: number;
  period_seconds: number;
  burst_per_second: number | null;
  fail_open: boolean;
  adaptive: boolean;
  current_factor: number;
  usage: {
    requests: number;
    refused: number;
    /** The client nearest its limit in one minute ("session": every signed-in user together); never an exempt one. */
    busiest_client: string | null;
    busiest_client_minute: string | null;
    busiest_client_per_minute: number;
    /** The limit in force in that minute, per minute. */
    busiest_client_limit_per_minute: number | null;
    busiest_client_share: number;
    /** Clients exempt from the limits (load tests' tokens), and their requests: not in the share. */
    exempt_clients: string[];
    exempt_requests: number;
    minutes: [string, number, number][];
  };
  adjustments: { at: string; direction: string; old_factor: number; new_factor: number; reason: string }[];
}

/**
 * The chart's minutes: every minute of the hour that ends at the last minute with traffic (the API lists only
 * those), the others without a value. A single reading was drawn in the middle of an hour of its own, half of it
 * after the reading, into the future.
 */
export function minuteAxis(minutes: [string, number, number][]): { x: number[]; requests: (number | null)[]; refused: (number | null)[] } {
  if (minutes.length === 0) return { x: [], requests: [], refused: [] };
  const read = new Map(minutes.map(([at, n, refused]) => [Math.floor(epoch(at) / 60) * 60, [n, refused] as const]));
  const last = Math.max(...read.keys());
  const first = Math.min(Math.min(...read.keys()), last - 59 * 60);
  const x: number[] = [];
  for (let at = first; at <= last; at += 60) x.push(at);
  return { x, requests: x.map((at) => read.get(at)?.[0] ?? null), refused: x.map((at) => read.get(at)?.[1] ?? null) };
}

/** A minute as a time of day in this browser's time zone, named: "2:02 PM GMT+1". */
function minuteOfDay(iso: string): string {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit", timeZoneName: "short" });
}

function BusiestClient({ usage }: { usage: Policy["usage"] }) {
  const exempt = usage.exempt_clients ?? [];
  return (
    <>
      <p data-testid="busiest-client">
        Busiest client:{" "}
        {usage.busiest_client && usage.busiest_client_minute && usage.busiest_client_limit_per_minute !== null ? (
          <>
            {usage.busiest_client}
            {usage.busiest_client === "session" ? " (all signed-in users together)" : ""}, {count(usage.busiest_client_per_minute)} of{" "}
            {usage.busiest_client_limit_per_minute.toLocaleString("en-US", { maximumFractionDigits: 2 })}/min at {minuteOfDay(usage.busiest_client_minute)} (
            {percent(usage.busiest_client_share, 0)})
          </>
        ) : (
          "none in the last hour"
        )}
      </p>
      {exempt.length ? (
        <p data-testid="exempt-clients">
          Exempt from limits: {exempt.join(", ")} ({count(usage.exempt_requests)} requests, not limited)
        </p>
      ) : null}
    </>
  );
}

export default function RateLimitsPage() {
  usePageTitle("Rate limits");
  const state = useJson<{ results: Policy[] }>("/api/v1/ratelimits/", { refreshMs: 10000 });
  const [chosen, setChosen] = useState<string | null>(null);
  const policies = state.status === "ready" ? state.data.results : [];
  const shown = policies.find((p) => p.scope === chosen) ?? policies.find((p) => p.usage.requests > 0) ?? policies[0];
  const axis = useMemo(() => (shown ? minuteAxis(shown.usage.minutes) : null), [shown]);

  return (
    <section aria-labelledby="limits-title">
      <h1 id="limits-title">Rate limits</h1>
      <p className="muted">Per client token, over the last hour. "Busiest client" is the most one client sent in a minute, against the limit in force in that minute; clients exempt from the limits (load tests' tokens) are listed apart.</p>
      <LoadStatus state={state} what="rate limits" />
      {state.status === "ready" && policies.length === 0 ? <p className="muted">No rate-limit policy yet.</p> : null}
      {policies.length ? (
        <TableScroll label="Rate-limit policies">
          <table className="table" data-testid="limits-table">
            <caption className="sr-only">Rate-limit policies with the last hour's usage and refusals</caption>
            <thead>
              <tr>
                <th scope="col">Scope</th>
                <th scope="col" className="num">Limit in force</th>
                <th scope="col" className="num">Requests (1 h)</th>
                <th scope="col" className="num">429s (1 h)</th>
                <th scope="col">Busiest client</th>
                <th scope="col">Adaptive</th>
                <th scope="col">If Redis is down</th>
              </tr>
            </thead>
            <tbody>
              {policies.map((p) => (
                <tr key={p.scope} className={shown?.scope === p.scope ? "selected" : undefined}>
                  <th scope="row">
                    {/* aria-selected on a plain table's row is not announced: the button says which scope is charted. */}
                    <button type="button" className="link-button" aria-pressed={shown?.scope === p.scope} onClick={() => setChosen(p.scope)}>
                      <Truncated text={p.scope} />
                    </button>
                    {p.enabled ? null : <span className="muted"> (off)</span>}
                  </th>
                  <td className="num">
                    {p.effective_requests}/{seconds(p.period_seconds)}
                    {p.effective_requests !== p.requests ? <span className="muted"> (of {p.requests})</span> : null}
                  </td>
                  <td className="num">{count(p.usage.requests)}</td>
                  <td className="num">{count(p.usage.refused)}</td>
                  <td>
                    <meter min={0} max={1} high={0.8} optimum={0} value={Math.min(p.usage.busiest_client_share, 1)} aria-label={`${p.scope} busiest client usage`} />{" "}
                    {percent(p.usage.busiest_client_share, 0)}
                  </td>
                  <td>{p.adaptive ? `on, ×${p.current_factor.toFixed(2)}` : "off"}</td>
                  <td>{p.fail_open ? "allow" : "refuse"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
      {shown && axis ? (
        <>
          <BusiestClient usage={shown.usage} />
          <Chart
            title={`${shown.scope}: requests and 429s per minute`}
            x={axis.x}
            kind="bars"
            valueKind="count"
            unit="/min"
            series={[
              { label: "requests", values: axis.requests },
              { label: "429s", values: axis.refused, color: "var(--bad)" },
            ]}
          />
          <h2>Adaptive changes of {shown.scope}</h2>
          {shown.adjustments.length === 0 ? (
            <p className="muted">None yet.</p>
          ) : (
            <ul>
              {shown.adjustments.map((a) => (
                <li key={a.at}>
                  {when(a.at)}: {a.direction} ×{a.old_factor.toFixed(2)} → ×{a.new_factor.toFixed(2)} ({a.reason})
                </li>
              ))}
            </ul>
          )}
        </>
      ) : null}
    </section>
  );
}
