import { getJson, query } from "../../../lib/api";

export interface AuditEvent {
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

/** A keyset page: `next` is the URL of the following one. */
export interface AuditPage {
  next: string | null;
  results: AuditEvent[];
}

export const PAGE_SIZE = 500;

export function auditUrl(action: string, resourceType: string): string {
  return `/api/v1/audit/${query({ action, resource_type: resourceType.trim(), page_size: PAGE_SIZE })}`;
}

export function fetchAuditPage(url: string, signal?: AbortSignal): Promise<AuditPage> {
  return getJson<AuditPage>(url, signal);
}
