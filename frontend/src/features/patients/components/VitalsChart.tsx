import { useMemo, useState } from "react";

import { Chart } from "../../../components/ui/Chart";
import { LoadStatus } from "../../../components/ui/Status";
import { epoch } from "../../../lib/format";
import { useJson } from "../../../lib/useJson";
import { NOT_READINGS, vitalsUrl, type Observation, type Patient } from "../api/patients";

export const VITALS: { code: string; label: string; unit: string }[] = [
  { code: "8867-4", label: "Heart rate", unit: "/min" },
  { code: "8480-6,8462-4", label: "Blood pressure", unit: " mmHg" },
  { code: "9279-1", label: "Respiratory rate", unit: "/min" },
  { code: "2708-6", label: "Oxygen saturation", unit: "%" },
  { code: "8310-5", label: "Body temperature", unit: " °C" },
  { code: "29463-7", label: "Body weight", unit: " kg" },
];

/** One patient's vital signs over time; each load is a PHI read, audited by the server. */
export function VitalsChart({ patient }: { patient: Patient }) {
  const [code, setCode] = useState(VITALS[0].code);
  const vital = VITALS.find((v) => v.code === code) ?? VITALS[0];
  const state = useJson<{ results: Observation[] }>(vitalsUrl(patient.id, code));

  const chart = useMemo(() => {
    if (state.status !== "ready") return null;
    const codes = code.split(",");
    // The server's list leaves retracted readings out; a list from an older server (or a cache) may not, and a
    // retracted 300/min must not be plotted as the patient's heart rate.
    const readings = state.data.results.filter((o) => !NOT_READINGS.has(o.status));
    const byTime = new Map<number, (number | null)[]>();
    for (const observation of readings) {
      const at = epoch(observation.effective_at);
      const row = byTime.get(at) ?? codes.map(() => null);
      row[codes.indexOf(observation.code)] = observation.value;
      byTime.set(at, row);
    }
    const x = [...byTime.keys()].sort((a, b) => a - b);
    const displays = codes.map((c) => readings.find((o) => o.code === c)?.display ?? c);
    return {
      x,
      series: codes.map((_, i) => ({ label: displays[i], values: x.map((at) => byTime.get(at)![i]) })),
    };
  }, [state, code]);

  return (
    <section aria-labelledby="vitals-title" className="panel">
      <h2 id="vitals-title">
        {patient.family_name}, {patient.given_name} <span className="muted">· born {patient.birth_date}</span>
      </h2>
      <label>
        Vital sign{" "}
        <select value={code} onChange={(event) => setCode(event.target.value)}>
          {VITALS.map((v) => (
            <option key={v.code} value={v.code}>
              {v.label}
            </option>
          ))}
        </select>
      </label>
      <LoadStatus state={state} what="vital signs" />
      {chart ? (
        // A new plot per patient and sign: its scales and legend start from this patient's readings.
        <Chart key={`${patient.id}:${code}`} title={`${vital.label} (${chart.x.length === 1 ? "1 reading" : `${chart.x.length} readings`})`} x={chart.x} series={chart.series} unit={vital.unit} />
      ) : null}
    </section>
  );
}
