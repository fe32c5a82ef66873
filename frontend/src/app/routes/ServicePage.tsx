import { useEffect, useState } from "react";
import { Link, useParams } from "react-router";

import { Chart } from "../../components/ui/Chart";
import { fetchSeries, RANGES, type RangeName } from "../../features/service/series";

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
  { title: "Host CPU and memory", metrics: ["cpu_pct", "memory_pct"], labels: ["CPU %", "memory %"], unit: "%", host: true },
];

type Loaded = { x: number[]; values: (number | null)[][] };

export default function ServicePage() {
  const { slug = "" } = useParams();
  const [range, setRange] = useState<RangeName>("1h");
  const [data, setData] = useState<(Loaded | null)[]>(PANELS.map(() => null));
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    const load = () =>
      Promise.all(PANELS.map((panel) => fetchSeries(panel.metrics, range, { service: panel.host ? undefined : slug })))
        .then((loaded) => live && (setData(loaded), setError(null)))
        .catch((failure: Error) => live && setError(failure.message));
    void load();
    const timer = window.setInterval(load, range === "1h" ? 15000 : 60000);
    return () => {
      live = false;
      window.clearInterval(timer);
    };
  }, [slug, range]);

  return (
    <section aria-labelledby="service-title">
      <p>
        <Link to="/">← Overview</Link>
      </p>
      <h1 id="service-title">Service {slug}</h1>
      <div role="group" aria-label="Time range" className="segmented">
        {(Object.keys(RANGES) as RangeName[]).map((name) => (
          <button key={name} type="button" aria-pressed={range === name} onClick={() => setRange(name)}>
            {name}
          </button>
        ))}
      </div>
      {error ? <p role="alert" className="error">Could not load the series: {error}</p> : null}
      <div className="grid">
        {PANELS.map((panel, i) => {
          const loaded = data[i];
          return loaded ? (
            <Chart
              key={panel.title}
              title={panel.title}
              x={loaded.x}
              unit={panel.unit}
              series={panel.labels.map((label, j) => ({ label, values: loaded.values[j] }))}
            />
          ) : (
            <p key={panel.title} className="muted">Loading {panel.title.toLowerCase()}…</p>
          );
        })}
      </div>
    </section>
  );
}
