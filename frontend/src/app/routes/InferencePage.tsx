import { Chart } from "../../components/ui/Chart";
import { LoadError, LoadStatus } from "../../components/ui/Status";
import { TableScroll } from "../../components/ui/TableScroll";
import { fixed, when } from "../../lib/format";
import { useJson } from "../../lib/useJson";
import { useSeries } from "../../features/service/useSeries";
import { usePageTitle } from "../../lib/usePageTitle";

interface Profile {
  mode: string;
  available: boolean;
  chosen: boolean;
  verdict: string;
  p95_ms_batch1: number | null;
  best_batch_size: number | null;
  sequences_per_s: number | null;
  tokens_per_s: number | null;
  tokens_per_s_batch1: number | null;
  ttft_ms: number | null;
  tpot_ms: number | null;
  peak_memory_mb: number | null;
  weights_mb: number | null;
  fidelity_loss: number | null;
}

interface Deployment {
  id: number;
  name: string;
  task: "embedding" | "generation";
  source: string;
  quantization: string;
  /** The mode this server process answers in (fp32 where a measured mode cannot run here, the model kept
   * after an edit failed to load), with the reason where it is not the mode configured or measured. */
  serving_quantization: string;
  serving_reason: string | null;
  chosen_quantization: string | null;
  load_failure: string | null;
  load_failed_at: string | null;
  measured_at: string | null;
  max_batch_size: number;
  slo_p95_ms: number;
  fidelity_budget: number;
  profiles: Profile[];
}

/** The mode the deployment's row asks for: the admin's choice, else the measured one. */
function asked(deployment: Deployment): string {
  return deployment.quantization === "auto" ? (deployment.chosen_quantization ?? "fp32") : deployment.quantization;
}

function ModeTable({ deployment }: { deployment: Deployment }) {
  const generation = deployment.task === "generation";
  return (
    <TableScroll label={`Quantization modes of ${deployment.name}`}>
      <table className="table" data-testid={`modes-${deployment.name}`}>
        <caption className="sr-only">Quantization modes of {deployment.name} as measured on this host</caption>
        <thead>
          <tr>
            <th scope="col">Mode</th>
            <th scope="col" className="num">{generation ? "tokens/s (1 stream)" : "seq/s"}</th>
            <th scope="col" className="num">{generation ? "tokens/s (batched)" : "best batch"}</th>
            <th scope="col" className="num">{generation ? "TTFT" : "p95 at batch 1"}</th>
            <th scope="col" className="num">Peak memory</th>
            <th scope="col" className="num">Weights</th>
            <th scope="col" className="num">Fidelity loss</th>
            <th scope="col">Verdict</th>
          </tr>
        </thead>
        <tbody>
          {deployment.profiles.map((p) => (
            <tr key={p.mode}>
              <th scope="row">
                {p.mode}
                {p.chosen ? <span className="tag">chosen</span> : null}
              </th>
              <td className="num">{fixed(generation ? p.tokens_per_s_batch1 : p.sequences_per_s)}</td>
              <td className="num">{generation ? fixed(p.tokens_per_s) : (p.best_batch_size ?? "—")}</td>
              <td className="num">{fixed(generation ? p.ttft_ms : p.p95_ms_batch1, 1, " ms")}</td>
              <td className="num">{fixed(p.peak_memory_mb, 0, " MB")}</td>
              <td className="num">{fixed(p.weights_mb, 0, " MB")}</td>
              <td className="num">{p.fidelity_loss === null ? "—" : p.fidelity_loss.toFixed(4)}</td>
              <td className={p.chosen ? "ok" : p.available ? "" : "muted"}>{p.verdict}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

export default function InferencePage() {
  usePageTitle("Inference");
  const state = useJson<{ results: Deployment[] }>("/api/v1/inference/deployments/", { refreshMs: 30000 });
  const tokens = useSeries(["inference_tokens_per_s"], "24h", { refreshMs: 60000 });
  // Failed model loads (out of memory, unreadable weights, a mode this host cannot run), every deployment's, per
  // 15 minutes: the row's `load_failure` keeps only the last one and is cleared by the next load that succeeds.
  const failures = useSeries(["inference_load_failures"], "24h", { refreshMs: 60000 });
  const failed = failures.data ? failures.data.values[0].reduce<number>((total, value) => total + (value ?? 0), 0) : null;

  return (
    <section aria-labelledby="inference-title">
      <h1 id="inference-title">Inference</h1>
      <p className="muted">
        Each deployment serves in the mode measured fastest on this host inside its fidelity budget (<code>manage.py optimize model</code>).
      </p>
      {tokens.data ? (
        <Chart title="Generated tokens per second, served traffic, last 24 h" x={tokens.data.x} unit=" tok/s" series={[{ label: "tokens/s", values: tokens.data.values[0] }]} />
      ) : null}
      {tokens.error ? <LoadError what={tokens.data ? "the latest tokens per second" : "tokens per second"} {...tokens.error} /> : null}
      {failures.data ? (
        <>
          <Chart
            title="Failed model loads per 15 minutes, every deployment, last 24 h"
            x={failures.data.x}
            kind="bars"
            valueKind="count"
            series={[{ label: "failed loads", values: failures.data.values[0], color: "var(--bad)" }]}
          />
          <p className="muted" data-testid="load-failures-total">
            {failed ? `${failed} failed model load${failed === 1 ? "" : "s"} in the last 24 h.` : "No failed model load in the last 24 h."}
          </p>
        </>
      ) : null}
      {failures.error ? <LoadError what={failures.data ? "the latest failed model loads" : "failed model loads"} {...failures.error} /> : null}
      <LoadStatus state={state} what="model deployments" />
      {state.status === "ready"
        ? state.data.results.map((deployment) => {
            const measured = deployment.profiles.filter((p) => p.available);
            const generation = deployment.task === "generation";
            return (
              <article key={deployment.id} className="panel" aria-labelledby={`deployment-${deployment.id}`}>
                <h2 id={`deployment-${deployment.id}`}>{deployment.name}</h2>
                <p className="muted">
                  {deployment.task} · serving <strong data-testid={`serving-${deployment.name}`}>{deployment.serving_quantization}</strong>
                  {deployment.quantization === "auto" ? " (auto)" : " (fixed in admin)"} · batches up to {deployment.max_batch_size} · p95 SLO{" "}
                  {deployment.slo_p95_ms} ms · fidelity budget {deployment.fidelity_budget} · measured {when(deployment.measured_at)}
                </p>
                {deployment.serving_reason ? (
                  <p className="warn" data-testid={`serving-reason-${deployment.name}`}>
                    Serving {deployment.serving_quantization}, not {asked(deployment)}: {deployment.serving_reason}.
                  </p>
                ) : null}
                {deployment.load_failure ? (
                  <p className="warn" data-testid={`load-failure-${deployment.name}`}>
                    Last failed load ({when(deployment.load_failed_at)}): {deployment.load_failure}.
                  </p>
                ) : null}
                {measured.length ? (
                  <Chart
                    title={generation ? "Tokens per second by mode (one stream)" : "Sequences per second by mode (best batch)"}
                    x={measured.map((_, i) => i)}
                    time={false}
                    kind="bars"
                    height={160}
                    xLabels={measured.map((p) => p.mode)}
                    unit={generation ? " tok/s" : " seq/s"}
                    series={[{ label: generation ? "tokens/s" : "sequences/s", values: measured.map((p) => (generation ? p.tokens_per_s_batch1 : p.sequences_per_s)) }]}
                  />
                ) : null}
                {deployment.profiles.length ? <ModeTable deployment={deployment} /> : <p className="muted">Not measured yet.</p>}
              </article>
            );
          })
        : null}
      {state.status === "ready" && state.data.results.length === 0 ? <p className="muted">No model deployment yet.</p> : null}
    </section>
  );
}
