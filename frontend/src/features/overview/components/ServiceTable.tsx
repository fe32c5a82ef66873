import type { Service } from "../api/services";

export function ServiceTable({ services, adminUrl }: { services: Service[]; adminUrl: string }) {
  if (services.length === 0) {
    return <p className="muted">No services registered yet. Add one in the admin.</p>;
  }
  return (
    <table className="table">
      <caption className="sr-only">Registered services and their SLO targets</caption>
      <thead>
        <tr>
          <th scope="col">Service</th>
          <th scope="col">Kind</th>
          <th scope="col">Owner</th>
          <th scope="col" className="num">p95 target</th>
          <th scope="col" className="num">p99 target</th>
          <th scope="col" className="num">Max errors</th>
        </tr>
      </thead>
      <tbody>
        {services.map((service) => (
          <tr key={service.slug}>
            <th scope="row">
              <a href={`${adminUrl}services/service/${service.id}/change/`}>{service.name}</a>
              {service.is_active ? null : <span className="muted"> (inactive)</span>}
            </th>
            <td>{service.kind}</td>
            <td>{service.owner_team || "—"}</td>
            <td className="num">{service.slo_p95_ms} ms</td>
            <td className="num">{service.slo_p99_ms} ms</td>
            <td className="num">{service.slo_error_rate_pct}%</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
