import { getJson, query } from "../../../lib/api";

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
}

export function fetchPatientWindow(name: string, offset: number, limit: number, signal?: AbortSignal) {
  return getJson<PatientWindow>(`/api/v1/patients/window/${query({ name, offset, limit })}`, signal);
}

export function vitalsUrl(patientId: number, code: string, limit = 500): string {
  return `/api/v1/patients/${patientId}/vitals/${query({ code, limit })}`;
}
