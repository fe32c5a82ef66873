import { useRef, useState, type KeyboardEvent } from "react";

import { Chart } from "../../components/ui/Chart";
import { LoadStatus } from "../../components/ui/Status";
import { ago, epoch, fixed, when } from "../../lib/format";
import { useJson } from "../../lib/useJson";
import { emergencyText, type EmergencyRule } from "../../features/scaling/emergency";
import { chosenMase, forecastSeries, type Forecast, type ForecastPoint } from "../../features/scaling/forecastChart";
import { usePageTitle } from "../../lib/usePageTitle";

interface Policy {
  id: number;
  service: string;
  service_name: string;
  min_replicas: number;
  max_replicas: number;
  floor_replicas: number;
  vpa_mode: string;
  keda_enabled: boolean;
  emergency_mode: boolean;
  emergency_manual: boolean;
  emergency_until: string | null;
  emergency_alert_rule: EmergencyRule | null;
  apply_state: string;
  apply_error: string;
  history_source: string;
  forecasts: Record<string, Forecast | null>;
  /** Why the last hourly refresh made no forecast of a metric: {metric: reason}. */
  forecast_skipped?: Record<string, string>;
  earlier_request_rate: { created_at: string; points: ForecastPoint[] } | null;
  /** stale: over 24 h old with no forecast since; its KEDA cron windows still repeat its hours every day. */
  plan: { created_at: string; hours: { at: string; replicas: number; p90_rps?: number }[]; peak_replicas: number; reasons: string[]; stale?: boolean } | null;
}

// The models' choice labels (apps/scaling/models.py); the API sends the stored values.
const APPLY_STATES: Record<string, string> = {
  not_configured: "no cluster configured",
  pending: "pending",
  applying: "applying",
  active: "active",
  failed: "failed",
};
const VPA_MODES: Record<string, string> = {
  Off: "off (recommendations only)",
  Initial: "initial (at pod creation)",
  Recreate: "recreate",
  Auto: "auto",
};
const HISTORY_SOURCES: Record<string, string> = {
  metrics: "this control plane's metrics",
  prometheus: "Prometheus",
  synthetic: "synthetic hospital traffic (demo)",
};

const METRICS: Record<string, { label: string; unit: string }> = {
  request_rate: { label: "Request rate", unit: " req/s" },
  response_time: { label: "Response time p95", unit: " ms" },
  cpu: { label: "CPU", unit: "%" },
  memory: { label: "Memory", unit: "%" },
};

/** A plan's age: in days past two (a stale plan is a day old at least), else as `ago` says it. */
function planAge(createdAt: string): string {
  const ms = Date.now() - Date.parse(createdAt);
  const days = Math.floor(ms / 86_400_000);
  return days >= 2 ? `${days} days` : ago(ms);
}

function Manifests({ policyId }: { policyId: number }) {
  const state = useJson<{ files: Record<string, string>; errors: string[] }>(`/api/v1/scaling/policies/${policyId}/manifests/`);
  const [file, setFile] = useState<string | null>(null);
  const tabs = useRef<(HTMLButtonElement | null)[]>([]);
  if (state.status !== "ready") return <LoadStatus state={state} what="manifests" />;
  const names = Object.keys(state.data.files);
  const shown = file !== null && names.includes(file) ? file : names[0];
  const id = (i: number) => `manifest-${policyId}-${i}`;
  // The tabs pattern: one tab stop, arrows (and Home/End) move between files; the file shown is its tabpanel.
  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const at = names.indexOf(shown);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: names.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    const next = (to + names.length) % names.length;
    setFile(names[next]);
    tabs.current[next]?.focus();
  };
  return (
    <div>
      <div role="tablist" aria-label="Manifest files" className="segmented" onKeyDown={onKeyDown}>
        {names.map((name, i) => (
          <button
            key={name}
            ref={(element) => {
              tabs.current[i] = element;
            }}
            id={`${id(i)}-tab`}
            role="tab"
            type="button"
            aria-selected={name === shown}
            aria-controls={`${id(i)}-panel`}
            tabIndex={name === shown ? 0 : -1}
            onClick={() => setFile(name)}
          >
            {name}
          </button>
        ))}
      </div>
      {state.data.errors.length ? (
        <ul role="alert" className="error">
          {state.data.errors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      ) : (
        <p className="ok">Valid against the Kubernetes schemas and the API server's ranges.</p>
      )}
      {names.length ? (
        <pre className="code" data-testid="manifest" tabIndex={0} role="tabpanel" id={`${id(names.indexOf(shown))}-panel`} aria-labelledby={`${id(names.indexOf(shown))}-tab`}>
          {state.data.files[shown]}
        </pre>
      ) : null}
    </div>
  );
}

function PolicyCard({ policy }: { policy: Policy }) {
  const [metric, setMetric] = useState("request_rate");
  const [showManifests, setShowManifests] = useState(false);
  const forecast = policy.forecasts[metric];
  const chart = forecast ? forecastSeries(forecast, metric === "request_rate" ? policy.earlier_request_rate : null) : null;
  const chosen = forecast?.scores.candidates?.find((candidate) => candidate.model === forecast.model);
  const mase = forecast ? chosenMase(forecast) : null;
  const emergency = emergencyText(policy);
  const skipped = policy.forecast_skipped?.[metric];

  return (
    <article className="panel" aria-labelledby={`policy-${policy.id}`}>
      <h2 id={`policy-${policy.id}`}>{policy.service_name}</h2>
      <p className="muted">
        {policy.min_replicas}–{policy.max_replicas} replicas · VPA{" "}
        {VPA_MODES[policy.vpa_mode] ?? policy.vpa_mode} · KEDA {policy.keda_enabled ? "on" : "off"} · cluster:{" "}
        <span className={policy.apply_state === "failed" ? "bad" : undefined}>{APPLY_STATES[policy.apply_state] ?? policy.apply_state}</span> · history:{" "}
        {HISTORY_SOURCES[policy.history_source] ?? policy.history_source}
      </p>
      <p className={emergency.on ? "bad" : "muted"} data-testid={`emergency-${policy.id}`}>
        {emergency.on ? <strong>{emergency.text}</strong> : emergency.text}
      </p>
      {policy.apply_state === "failed" && policy.apply_error ? (
        <p role="alert" className="error">
          Applying to the cluster failed: {policy.apply_error}
        </p>
      ) : null}
      <label>
        Forecast of{" "}
        <select value={metric} onChange={(event) => setMetric(event.target.value)}>
          {Object.entries(METRICS).map(([value, { label }]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </label>
      {forecast && chart ? (
        <>
          <Chart title={`${METRICS[metric].label}: last days and the next 24 h (P10–P90 band)`} x={chart.x} series={chart.series} bands={chart.bands} unit={METRICS[metric].unit} markers={[epoch(forecast.created_at)]} />
          <p className="muted">
            Model {forecast.model}, made {when(forecast.created_at)}; chosen on backtest MASE (m={mase?.seasonality}) {fixed(mase?.value, 2)}, sMAPE{" "}
            {fixed(chosen?.smape, 1, "%")}, P10–P90 coverage {fixed(chosen?.coverage, 2)}.
          </p>
          {skipped ? (
            <p className="bad" data-testid={`forecast-skipped-${policy.id}`}>
              The last hourly refresh made no new forecast: {skipped}. This one is older.
            </p>
          ) : null}
        </>
      ) : skipped ? (
        <p className="muted" data-testid={`forecast-skipped-${policy.id}`}>
          No forecast: {skipped}.
        </p>
      ) : (
        <p className="muted">No forecast yet: the hourly task makes one once there is history.</p>
      )}
      {policy.plan?.stale ? (
        <p role="status" className="bad" data-testid={`plan-stale-${policy.id}`}>
          <strong>Stale replica plan</strong>: made {when(policy.plan.created_at)}, {planAge(policy.plan.created_at)} old, and no
          forecast has replaced it since; its KEDA cron windows repeat its hours every day until one does.
        </p>
      ) : null}
      {policy.plan ? (
        <Chart
          title={`Planned replicas (peak ${policy.plan.peak_replicas})${policy.plan.stale ? `, stale: ${planAge(policy.plan.created_at)} old` : ""}`}
          x={policy.plan.hours.map((h) => epoch(h.at))}
          kind="step"
          valueKind="count"
          series={[{ label: "replicas", values: policy.plan.hours.map((h) => h.replicas), color: "var(--ok)" }]}
          height={160}
        />
      ) : null}
      <button type="button" onClick={() => setShowManifests((shown) => !shown)} aria-expanded={showManifests}>
        {showManifests ? "Hide manifests" : "Preview manifests"}
      </button>
      {showManifests ? <Manifests policyId={policy.id} /> : null}
    </article>
  );
}

export default function ScalingPage() {
  usePageTitle("Scaling");
  const state = useJson<{ results: Policy[] }>("/api/v1/scaling/policies/", { refreshMs: 60000 });
  return (
    <section aria-labelledby="scaling-title">
      <h1 id="scaling-title">Scaling</h1>
      <LoadStatus state={state} what="scaling policies" />
      {state.status === "ready" && state.data.results.length === 0 ? <p className="muted">No scaling policy yet.</p> : null}
      {state.status === "ready" ? state.data.results.map((policy) => <PolicyCard key={policy.id} policy={policy} />) : null}
    </section>
  );
}
