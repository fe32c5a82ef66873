import { getJson, postSearch, query } from "../../../lib/api";

export interface Patient {
  id: number;
  identifier_system: string;
  mrn: string;
  family_name: string;
  given_name: string;
  birth_date: string;
  sex: string;
}

export interface PatientWindow {
  count: number;
  offset: number;
  results: Patient[];
}

export interface Observation {
  id: number;
  code: string;
  display: string;
  value: number | null;
  unit: string;
  effective_at: string;
  /** FHIR Observation.status: "entered-in-error" (retracted) and "cancelled" are no reading. */
  status: string;
}

/** Statuses of a result that is no reading (the server's Observation.NOT_READINGS). */
export const NOT_READINGS: ReadonlySet<string> = new Set(["entered-in-error", "cancelled"]);

const WINDOW = "/api/v1/patients/window/";

/**
 * A window of the patient list. A search by name is posted, so the name never appears in a URL (and so in no
 * access log); the whole list, which names no one, stays a GET.
 */
export function fetchPatientWindow(name: string, offset: number, limit: number, signal?: AbortSignal) {
  if (name) return postSearch<PatientWindow>(WINDOW, { name, offset, limit }, signal);
  return getJson<PatientWindow>(`${WINDOW}${query({ offset, limit })}`, signal);
}

export function vitalsUrl(patientId: number, code: string, limit = 500): string {
  return `/api/v1/patients/${patientId}/vitals/${query({ code, limit })}`;
}
