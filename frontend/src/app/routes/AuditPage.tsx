import { useCallback, useEffect, useRef, useState } from "react";

import { VirtualList } from "../../components/ui/VirtualList";
import { getJson, query } from "../../lib/api";
import { when } from "../../lib/format";

interface AuditEvent {
  id: number;
  recorded_at: string;
  actor_type: string;
  actor_name: string;
  action: string;
  resource_type: string;
  resource_id: string;
  outcome: string;
  purpose_of_use: string;
  result_count: number | null;
  served_from_cache: boolean;
  request_id: string;
}

interface Page {
  next: string | null;
  results: AuditEvent[];
}

const ACTIONS = ["", "read", "search", "create", "update", "delete"];

/** The audit trail, newest first: a keyset page of 500 at a time, fetched as the list nears its end. */
export default function AuditPage() {
  const [action, setAction] = useState("");
  const [resourceType, setResourceType] = useState("");
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loading = useRef(false);

  const load = useCallback(async (url: string, replace: boolean) => {
    loading.current = true;
    try {
      const page = await getJson<Page>(url);
      setEvents((previous) => (replace ? page.results : [...previous, ...page.results]));
      setNext(page.next);
      setError(null);
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      loading.current = false;
    }
  }, []);

  useEffect(() => {
    void load(`/api/v1/audit/${query({ action, resource_type: resourceType.trim(), page_size: 500 })}`, true);
  }, [action, resourceType, load]);

  const onRange = useCallback(
    (_first: number, last: number) => {
      if (next && !loading.current && last >= events.length - 50) void load(next, false);
    },
    [next, events.length, load],
  );

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit trail</h1>
      <div className="filters">
        <label>
          Action{" "}
          <select value={action} onChange={(event) => setAction(event.target.value)}>
            {ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a || "any"}
              </option>
            ))}
          </select>
        </label>
        <label>
          Resource type <input value={resourceType} onChange={(event) => setResourceType(event.target.value)} placeholder="e.g. Patient" />
        </label>
      </div>
      {error ? <p role="alert" className="error">Could not load the audit trail: {error}</p> : null}
      <p className="muted" data-testid="audit-count">
        {events.length} events loaded{next ? ", more as you scroll" : ""}
      </p>
      <VirtualList
        count={events.length}
        rowHeight={36}
        height={560}
        label="Audit events"
        onRange={onRange}
        header={
          <div role="row" className="vlist-row vlist-head audit-row">
            {["When", "Who", "Action", "Resource", "Outcome", "Purpose", "Rows", "Cache"].map((title) => (
              <span key={title} className="cell" role="columnheader">
                {title}
              </span>
            ))}
          </div>
        }
        renderRow={(index) => {
          const event = events[index];
          return (
            <div className="audit-row">
              <span className="cell" role="cell">{when(event.recorded_at)}</span>
              <span className="cell" role="cell">{event.actor_type}: {event.actor_name}</span>
              <span className="cell" role="cell">{event.action}</span>
              <span className="cell" role="cell">{event.resource_type} {event.resource_id}</span>
              <span className="cell" role="cell">{event.outcome}</span>
              <span className="cell" role="cell">{event.purpose_of_use}</span>
              <span className="cell" role="cell">{event.result_count ?? "—"}</span>
              <span className="cell" role="cell">{event.served_from_cache ? "cached" : ""}</span>
            </div>
          );
        }}
      />
    </section>
  );
}
