import { Chart } from "../../components/ui/Chart";
import { LoadError, LoadStatus } from "../../components/ui/Status";
import { TableScroll } from "../../components/ui/TableScroll";
import { count, fixed, percent, seconds } from "../../lib/format";
import { useJson } from "../../lib/useJson";
import { useSeries } from "../../features/service/useSeries";
import { usePageTitle } from "../../lib/usePageTitle";
import { Truncated } from "../../components/ui/Truncated";

interface TierCounts {
  hits: number;
  misses: number;
  hit_rate?: number | null;
  evictions: number;
  entries: number;
}

interface Namespace {
  id: number;
  namespace: string;
  description: string;
  enabled: boolean;
  contains_phi: boolean;
  encrypt: boolean;
  tiers_enabled: string[];
  ttl_seconds: number;
  stale_while_revalidate_seconds: number;
  requests: number;
  hit_rate: number | null;
  hit_rate_1h: number | null;
  stale_serves: number;
  mean_load_ms: number | null;
  tiers: Record<string, TierCounts>;
}

export default function CachePage() {
  usePageTitle("Cache");
  const state = useJson<{ results: Namespace[] }>("/api/v1/cache/namespaces/", { refreshMs: 10000 });
  const trend = useSeries(["cache_hit_rate_pct"], "24h", { refreshMs: 60000 });

  return (
    <section aria-labelledby="cache-title">
      <h1 id="cache-title">Cache</h1>
      <p className="muted">L1 process memory → L2 Redis → L3 database, per namespace. The target hit rate is 80%.</p>
      {trend.data ? (
        <Chart title="Hit rate, all namespaces, last 24 h" x={trend.data.x} unit="%" series={[{ label: "hit rate %", values: trend.data.values[0] }]} />
      ) : null}
      {trend.error ? <LoadError what={trend.data ? "the latest hit rates" : "the hit rate trend"} {...trend.error} /> : null}
      <LoadStatus state={state} what="cache namespaces" />
      {state.status === "ready" && state.data.results.length === 0 ? <p className="muted">No cache namespace yet.</p> : null}
      {state.status === "ready" && state.data.results.length > 0 ? (
        <TableScroll label="Cache namespaces">
          <table className="table" data-testid="cache-table">
            <caption className="sr-only">Hit rate per namespace and tier, with each namespace's TTL</caption>
            <thead>
              <tr>
                <th scope="col">Namespace</th>
                <th scope="col" className="num">TTL</th>
                <th scope="col" className="num">Stale window</th>
                <th scope="col" className="num">Reads</th>
                <th scope="col" className="num">Hit rate (1 h)</th>
                <th scope="col" className="num">Hit rate (all)</th>
                <th scope="col" className="num">L1</th>
                <th scope="col" className="num">L2</th>
                <th scope="col" className="num">L3</th>
                <th scope="col" className="num">Mean load</th>
              </tr>
            </thead>
            <tbody>
              {state.data.results.map((ns) => (
                <tr key={ns.namespace}>
                  <th scope="row">
                    <a href={`/admin/caching/cachepolicy/${ns.id}/change/`}>
                      <Truncated text={ns.namespace} />
                    </a>
                    {ns.enabled ? null : <span className="muted"> (off)</span>}
                    {ns.contains_phi ? <span className="tag">PHI</span> : null}
                  </th>
                  <td className="num">{seconds(ns.ttl_seconds)}</td>
                  <td className="num">{seconds(ns.stale_while_revalidate_seconds)}</td>
                  <td className="num">{count(ns.requests)}</td>
                  <td className="num">{percent(ns.hit_rate_1h)}</td>
                  <td className="num">
                    {/* No reads yet: no meter, whose empty bar would read as a 0% hit rate. */}
                    {ns.hit_rate === null ? null : (
                      <>
                        <meter min={0} max={1} low={0.8} optimum={1} value={ns.hit_rate} aria-label={`${ns.namespace} hit rate`} />{" "}
                      </>
                    )}
                    {percent(ns.hit_rate)}
                  </td>
                  {["l1", "l2", "l3"].map((tier) => (
                    <td key={tier} className="num">
                      {ns.tiers_enabled.includes(tier) ? percent(ns.tiers[tier]?.hit_rate ?? null) : <span className="muted">off</span>}
                    </td>
                  ))}
                  <td className="num">{fixed(ns.mean_load_ms, 2, " ms")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
    </section>
  );
}
