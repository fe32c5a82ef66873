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
    /**
     * The client that attempted the most in one minute against the limit then: an API client's name ("API client #<id>" to users who may not see clients), `user:<id>`,
     * "session" (older rollups: every signed-in user together), "anonymous" or "unrecognised client"; never an
     * exempt one.
     */
    busiest_client: string | null;
    busiest_client_minute: string | null;
    /** Its requests admitted in that minute. */
    busiest_client_per_minute: number;
    /**
     * Its requests in that minute, admitted or not, and of those the 429s. Optional: a server older than these
     * fields ranked by the admitted alone and sends neither (null is read the same).
     */
    busiest_client_attempted?: number | null;
    busiest_client_refused?: number | null;
    /** The limit in force in that minute, per minute. */
    busiest_client_limit_per_minute: number | null;
    /** Its admitted requests against that limit. */
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

const isNumber = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);

/**
 * A rollup client label as the page says it: `user:<id>` as "user #<id>"; the labels that stand for many callers
 * say so ("session" is what older rollups, and older servers, call every signed-in user together); an API client's
 * name and "unrecognised client" (the server's word for a label it will not show) as they are.
 */
function clientName(label: string): string {
  const user = /^user:([0-9]+)$/.exec(label);
  if (user) return `user #${user[1]}`;
  if (label === "session") return "session (all signed-in users together)";
  if (label === "anonymous") return "anonymous (callers not signed in, together)";
  return label;
}

/**
 * The busiest client's minute: "demo-clinical-app: 480 attempted, 381 refused (limit 100/min)". A server older
 * than `busiest_client_attempted` sends only the admitted: those are said as such, never as what it attempted.
 */
function busiestClientText(usage: Policy["usage"]): string | null {
  if (!usage.busiest_client) return null;
  const attempted = usage.busiest_client_attempted;
  const refused = usage.busiest_client_refused;
  const counts = isNumber(attempted)
    ? [`${count(attempted)} attempted`, ...(isNumber(refused) ? [`${count(refused)} refused`] : [])]
    : isNumber(usage.busiest_client_per_minute)
      ? [`${count(usage.busiest_client_per_minute)} admitted`]
      : [];
  const limit = usage.busiest_client_limit_per_minute;
  const parts = [
    `${clientName(usage.busiest_client)}${counts.length ? `: ${counts.join(", ")}` : ""}`,
    isNumber(limit) ? ` (limit ${limit.toLocaleString("en-US", { maximumFractionDigits: 2 })}/min)` : "",
    usage.busiest_client_minute ? ` in the minute at ${minuteOfDay(usage.busiest_client_minute)}` : "",
  ];
  return parts.join("");
}

/**
 * The table's measure of a scope's busiest client: what it attempted against the limit (a client refused 381
 * times of 480 reads 480%, not the 100% of one just at its limit); its admitted share from an older server.
 */
function busiestLoad(usage: Policy["usage"]): number {
  const attempted = usage.busiest_client_attempted;
  const limit = usage.busiest_client_limit_per_minute;
  if (isNumber(attempted) && isNumber(limit) && limit > 0) return attempted / limit;
  return isNumber(usage.busiest_client_share) ? usage.busiest_client_share : 0;
}

function BusiestClient({ usage }: { usage: Policy["usage"] }) {
  const exempt = usage.exempt_clients ?? [];
  return (
    <>
      <p data-testid="busiest-client">Busiest client: {busiestClientText(usage) ?? "none in the last hour"}</p>
      {exempt.length ? (
        <p data-testid="exempt-clients">
          Exempt from limits: {exempt.join(", ")} ({count(usage.exempt_requests ?? 0)} requests, not limited)
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
      <p className="muted">Per client token, over the last hour; the scopes with the most 429s first. "Busiest client" is the most one client attempted in a minute (admitted and refused), against the limit in force in that minute; clients exempt from the limits (load tests' tokens) are listed apart.</p>
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
                    <meter min={0} max={1} high={0.8} optimum={0} value={Math.min(busiestLoad(p.usage), 1)} aria-label={`${p.scope} busiest client usage`} />{" "}
                    {percent(busiestLoad(p.usage), 0)}
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
