import { useState } from "react";

import { FieldMessage, fieldProps, LoadError } from "../../components/ui/Status";
import { VirtualList } from "../../components/ui/VirtualList";
import { auditUrl } from "../../features/audit/api/audit";
import { useAuditTrail } from "../../features/audit/hooks/useAuditTrail";
import { when } from "../../lib/format";
import { useDebounced } from "../../lib/useDebounced";
import { usePageTitle } from "../../lib/usePageTitle";
import { SessionGuard } from "../../components/ui/SessionGuard";

const ACTIONS = ["", "read", "search", "create", "update", "delete"];

/**
 * The resource types the server records (the `resource_type` of the audited views and services). A free-text
 * box matched exactly, so "patient" or "Patients" found nothing and said nothing.
 */
export const RESOURCE_TYPES = ["Patient", "Observation", "Encounter", "MedicationRequest", "ModelInference", "OptimizationRecommendation", "AuditEvent", "AuditChain"];

/** Filters apply once typing pauses this long: one request per word, not per keystroke. */
const FILTER_DEBOUNCE_MS = 300;

/** Query parameters that have an input here: the server's messages about them are shown by it. */
const FILTER_FIELDS = ["action", "resource_type"];

/** The audit trail, newest first: a keyset page of 500 at a time, fetched as the list nears its end. */
function AuditView() {
  usePageTitle("Audit trail");
  const [action, setAction] = useState("");
  const [resourceType, setResourceType] = useState("");
  const url = useDebounced(auditUrl(action, resourceType), FILTER_DEBOUNCE_MS);
  const { events, loading, hasMore, error, limitedFor, onRange } = useAuditTrail(url);

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit trail</h1>
      <div className="filters">
        <label>
          Action{" "}
          <select value={action} onChange={(event) => setAction(event.target.value)} {...fieldProps("audit", "action", error?.fields)}>
            {ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a || "any"}
              </option>
            ))}
          </select>
          <FieldMessage form="audit" name="action" fields={error?.fields} />
        </label>
        <label>
          Resource type{" "}
          <select value={resourceType} onChange={(event) => setResourceType(event.target.value)} {...fieldProps("audit", "resource_type", error?.fields)}>
            <option value="">any</option>
            {RESOURCE_TYPES.map((type) => (
              <option key={type} value={type}>
                {type}
              </option>
            ))}
          </select>
          <FieldMessage form="audit" name="resource_type" fields={error?.fields} />
        </label>
      </div>
      {error ? <LoadError what="the audit trail" message={error.message} code={error.code} fields={error.fields} shown={FILTER_FIELDS} /> : null}
      {limitedFor ? <p role="status">Rate limited: resuming in {limitedFor} s.</p> : null}
      <p className="muted" data-testid="audit-count">
        {loading
          ? "Loading the audit trail…"
          : error && events.length === 0
            ? "No events loaded."
            : `${events.length} events loaded${hasMore ? ", more as you scroll" : ""}`}
      </p>
      <VirtualList
        count={events.length}
        rowHeight={36}
        height={560}
        label="Audit events"
        wide
        onRange={onRange}
        header={
          <div role="row" aria-rowindex={1} className="vlist-row vlist-head audit-row">
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
              {[
                when(event.recorded_at),
                `${event.actor_type}: ${event.actor_name}`,
                event.action,
                `${event.resource_type} ${event.resource_id}`,
                event.outcome,
                event.purpose_of_use,
                String(event.result_count ?? "—"),
                event.served_from_cache ? "cached" : "",
              ].map((text, i) => (
                // Cut to the column by an ellipsis: the whole text in the cell's tooltip.
                <span key={i} className="cell" role="cell" title={text || undefined}>
                  {text}
                </span>
              ))}
            </div>
          );
        }}
      />
    </section>
  );
}

/** Patient data on screen only while the session lasts (see SessionGuard). */
export default function AuditPage() {
  return (
    <SessionGuard title="Audit trail" what="the audit trail">
      <AuditView />
    </SessionGuard>
  );
}
