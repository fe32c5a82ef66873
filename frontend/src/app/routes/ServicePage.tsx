import { useEffect, useState } from "react";
import { Link, useParams } from "react-router";

import { Chart } from "../../components/ui/Chart";
import { LoadError } from "../../components/ui/Status";
import type { Service } from "../../features/overview/api/services";
import { fetchSeries, RANGES, type RangeName } from "../../features/service/series";
import { errorState, refreshDeadline, type ErrorState } from "../../lib/api";
import { useJson } from "../../lib/useJson";
import { usePageTitle } from "../../lib/usePageTitle";

interface Panel {
  title: string;
  metrics: string[];
  labels: string[];
  unit: string;
  host?: boolean;
}

const PANELS: Panel[] = [
  { title: "Latency percentiles", metrics: ["p50_ms", "p95_ms", "p99_ms"], labels: ["p50", "p95", "p99"], unit: " ms" },
  { title: "Throughput", metrics: ["rps"], labels: ["req/s"], unit: "" },
  { title: "Errors", metrics: ["error_rate_pct"], labels: ["5xx %"], unit: "%" },
  // The limiter's refusals: the server leaves them out of the figures above, so they are charted apart.
  { title: "Rate limited", metrics: ["rate_limited_rps"], labels: ["429/s"], unit: "" },
  { title: "Host CPU and memory", metrics: ["cpu_pct", "memory_pct"], labels: ["CPU %", "memory %"], unit: "%", host: true },
];

type Loaded = { x: number[]; values: (number | null)[][] };

/** One panel's series: the last that loaded (kept through a failed refresh) and the last failure. */
interface PanelState {
  data: Loaded | null;
  error: ErrorState | null;
}

const EMPTY: PanelState = { data: null, error: null };

export default function ServicePage() {
  const { slug = "" } = useParams();
  const [range, setRange] = useState<RangeName>("1h");
  // Tagged with the service and range they are of: set empty by the effect only, the first render at a new
  // address drew the previous service's charts under the new one's name (a frame of another service's figures).
  const shown = `${slug}\n${range}`;
  const [loaded, setLoaded] = useState<{ of: string; panels: PanelState[] }>({ of: shown, panels: PANELS.map(() => EMPTY) });
  const panels = loaded.of === shown ? loaded.panels : PANELS.map(() => EMPTY);
  const service = useJson<Service & { route_prefix?: string }>(`/api/v1/services/${encodeURIComponent(slug)}/`);
  usePageTitle(service.status === "ready" ? service.data.name : slug);
  // No such service (or not one this user sees): its series would only repeat the 404 as a 400 per panel,
  // every 15 s; the page says it once.
  const missing = service.status === "error" && service.code === 404;
  // A service with no route prefix (the workers, the dashboard): its requests are not told apart, so the server
  // refuses its request series; asked anyway, four panels said so, a 400 each every 15 s. Null while the service
  // loads (nothing is asked before it is known); a service that failed to load otherwise is asked as before.
  const routes = service.status === "loading" ? null : service.status !== "ready" || service.data.route_prefix !== "";
  const wanted = PANELS.map((panel) => panel.host === true || routes !== false);

  useEffect(() => {
    if (missing || routes === null) return;
    let live = true;
    // One round at a time (a tick while the last is unanswered is skipped): on a server slower than the refresh
    // each tick stacked seven more requests, and an older round answering last replaced a newer one. Every series
    // request has a deadline of a few periods, so a round always ends: one that never answered stopped every later
    // refresh; now it is that panel's error, and the next tick asks again.
    let busy = false;
    const refreshMs = range === "1h" ? 15000 : 60000;
    const timeoutMs = refreshDeadline(refreshMs);
    const leaving = new AbortController();
    const of = `${slug}\n${range}`;
    setLoaded({ of, panels: PANELS.map(() => EMPTY) }); // another service or range: nothing of the older one is shown
    // Each panel on its own: one refused or failing series (the host's, another permission) leaves the others.
    const load = () => {
      if (busy) return;
      busy = true;
      const asked = PANELS.map((panel) =>
        panel.host || routes
          ? fetchSeries(panel.metrics, range, { service: panel.host ? undefined : slug, signal: leaving.signal, timeoutMs })
          : Promise.resolve(null),
      );
      return Promise.allSettled(asked).then(
        (outcomes) => {
          busy = false;
          if (!live) return;
          setLoaded((previous) => ({
            of,
            panels: outcomes.map((outcome, i) =>
              outcome.status === "fulfilled"
                ? { data: outcome.value, error: null }
                : { data: previous.of === of ? previous.panels[i].data : null, error: errorState(outcome.reason) },
            ),
          }));
        },
      );
    };
    void load();
    const timer = window.setInterval(load, refreshMs);
    return () => {
      live = false;
      window.clearInterval(timer);
      leaving.abort();
    };
  }, [slug, range, missing, routes]);

  return (
    <section aria-labelledby="service-title">
      <p>
        <Link to="/">← Overview</Link>
      </p>
      <h1 id="service-title">{service.status === "ready" ? service.data.name : slug}</h1>
      {service.status === "error" ? <LoadError what={`the service ${slug}`} message={service.message} code={service.code} fields={service.fields} /> : null}
      {missing ? null : (
        <>
          <div role="group" aria-label="Time range" className="segmented">
            {(Object.keys(RANGES) as RangeName[]).map((name) => (
              <button key={name} type="button" aria-pressed={range === name} onClick={() => setRange(name)}>
                {name}
              </button>
            ))}
          </div>
          {routes === false ? <p className="muted">No route prefix: no request metrics for this service.</p> : null}
          <div className="grid">
            {PANELS.map((panel, i) => {
              if (!wanted[i]) return null;
              const { data, error } = panels[i];
              const what = panel.title.toLowerCase();
              return (
                <div key={panel.title} className="grid-cell" data-testid={`panel-${i}`}>
                  {data ? (
                    <Chart title={panel.title} x={data.x} unit={panel.unit} series={panel.labels.map((label, j) => ({ label, values: data.values[j] }))} />
                  ) : error ? null : (
                    <p className="muted">Loading {what}…</p>
                  )}
                  {error ? <LoadError what={data ? `the latest ${what}` : what} message={error.message} code={error.code} fields={error.fields} /> : null}
                </div>
              );
            })}
          </div>
        </>
      )}
    </section>
  );
}
