import { Link } from "react-router";

import { TableScroll } from "../../../components/ui/TableScroll";
import { count as formatCount, fixed } from "../../../lib/format";
import type { Service, SloStatus } from "../api/services";
import { Truncated } from "../../../components/ui/Truncated";

function SloCell({ slo, slug, known }: { slo: SloStatus | undefined; slug: string; known: boolean }) {
  // Not loaded (yet, or refused): no figure, rather than "no traffic" for every service.
  if (!known)
    return (
      <span className="muted" data-testid={`slo-unknown-${slug}`}>
        —
      </span>
    );
  const hour = slo?.windows["1h"];
  if (!hour || !hour.count) return <span className="muted nowrap">no traffic</span>;
  const met = hour.p95_met !== false && hour.p99_met !== false && hour.error_rate_met !== false;
  if (met && hour.latency_judged === false)
    // The optimizer's rule: a p95 of a few requests (a cold start) is not judged, as `optimize` does not.
    return (
      <span className="muted nowrap">
        not judged · {formatCount(hour.count)} {hour.count === 1 ? "request" : "requests"}
        {slo?.min_requests ? ` (${formatCount(slo.min_requests)} needed)` : ""} · p95 {fixed(hour.p95_ms, 1, " ms")}
      </span>
    );
  return (
    <span className={`nowrap ${met ? "ok" : "bad"}`}>
      {met ? "met" : "missed"} · p95 {fixed(hour.p95_ms, 1, " ms")} · budget left{" "}
      {hour.error_budget_remaining === null ? "—" : `${Math.round(hour.error_budget_remaining * 100)}%`}
    </span>
  );
}

export function ServiceTable({
  services,
  adminUrl,
  slo = {},
  sloKnown = true,
}: {
  services: Service[];
  adminUrl: string;
  slo?: Record<string, SloStatus>;
  /** Whether `slo` was loaded: a service missing from a loaded status had no traffic. */
  sloKnown?: boolean;
}) {
  if (services.length === 0) {
    return <p className="muted">No services registered yet. Add one in the admin.</p>;
  }
  return (
    <TableScroll label="Services">
      <table className="table">
        <caption className="sr-only">Registered services, their SLO targets and their SLO status over the last hour</caption>
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Kind</th>
            <th scope="col">Owner</th>
            <th scope="col" className="num">p95 target</th>
            <th scope="col" className="num">p99 target</th>
            <th scope="col" className="num">Max errors</th>
            <th scope="col">SLO, last hour</th>
            <th scope="col">Settings</th>
          </tr>
        </thead>
        <tbody>
          {services.map((service) => (
            <tr key={service.slug}>
              <th scope="row">
                <Link to={`/services/${service.slug}`}>
                  <Truncated text={service.name} />
                </Link>
                {service.is_active ? null : <span className="muted"> (inactive)</span>}
              </th>
              <td>{service.kind}</td>
              <td>{service.owner_team ? <Truncated text={service.owner_team} /> : "—"}</td>
              <td className="num">{service.slo_p95_ms} ms</td>
              <td className="num">{service.slo_p99_ms} ms</td>
              <td className="num">{service.slo_error_rate_pct}%</td>
              <td>
                <SloCell slo={slo[service.slug]} slug={service.slug} known={sloKnown} />
              </td>
              <td>
                <a href={`${adminUrl}services/service/${service.id}/change/`} aria-label={`${service.name} in the admin`}>
                  admin
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}
