import { useCallback, useState } from "react";

import { FieldMessage, fieldProps, LoadError } from "../../components/ui/Status";
import { VirtualList } from "../../components/ui/VirtualList";
import { count as formatCount } from "../../lib/format";
import type { Patient } from "../../features/patients/api/patients";
import { VitalsChart } from "../../features/patients/components/VitalsChart";
import { usePatientWindow } from "../../features/patients/hooks/usePatientWindow";
import { useDebounced } from "../../lib/useDebounced";
import { usePageTitle } from "../../lib/usePageTitle";
import { SessionGuard } from "../../components/ui/SessionGuard";

const ROW_HEIGHT = 36;
/** A search goes once typing pauses this long: each is a PHI read in the audit trail and a request of the rate limit. */
const SEARCH_DEBOUNCE_MS = 300;

function PatientsView() {
  usePageTitle("Patients");
  const [search, setSearch] = useState("");
  // Deferred only (no pause), every letter from the second on was posted: four audited searches for "smith".
  const name = useDebounced(search.trim(), SEARCH_DEBOUNCE_MS);
  const window = usePatientWindow(name.length >= 2 ? name : "");
  const [selected, setSelected] = useState<Patient | null>(null);

  const renderRow = useCallback(
    (index: number) => {
      const patient = window.rows.get(index);
      if (!patient) {
        const loading = `Loading row ${formatCount(index + 1)}…`;
        return <span className="muted cell" title={loading}>{loading}</span>;
      }
      // The cells are the row's own, the button in the first: a button's children are presentational, so cells
      // inside one were no cells at all to a screen reader. The button's ::after covers the row for the mouse.
      return (
        <>
          <span className="cell" role="gridcell">
            {/* Not a Tab stop: the grid is the list's one; its keys move between rows, Enter opens one. */}
            <button type="button" className="row-button" tabIndex={-1} onClick={() => setSelected(patient)} aria-pressed={selected?.id === patient.id} title={`${patient.family_name}, ${patient.given_name}`}>
              {patient.family_name}, {patient.given_name}
            </button>
          </span>
          {/* Cut to the column by an ellipsis on a narrow screen: the whole text in the cell's tooltip. */}
          <span className="cell" role="gridcell" title={patient.birth_date || undefined}>{patient.birth_date}</span>
          <span className="cell" role="gridcell" title={patient.sex || undefined}>{patient.sex}</span>
          <span className="cell muted" role="gridcell" title={`#${patient.id}`}>#{patient.id}</span>
        </>
      );
    },
    [window.rows, selected],
  );
  const open = useCallback(
    (index: number) => {
      const patient = window.rows.get(index);
      if (patient) setSelected(patient);
    },
    [window.rows],
  );

  return (
    <section aria-labelledby="patients-title">
      <h1 id="patients-title">Patients</h1>
      <p className="muted">Every page of this list and every chart opened is a PHI read, written to the audit trail.</p>
      <label>
        Search by name{" "}
        <input
          type="search"
          value={search}
          onChange={(event) => setSearch(event.target.value)}
          placeholder="at least 2 letters"
          {...fieldProps("patients", "name", window.error?.fields)}
        />
        <FieldMessage form="patients" name="name" fields={window.error?.fields} />
      </label>
      {window.error ? <LoadError what="patients" message={window.error.message} code={window.error.code} fields={window.error.fields} shown={["name"]} /> : null}
      {window.limitedFor ? <p role="status">Rate limited: resuming in {window.limitedFor} s.</p> : null}
      <p className="muted" data-testid="patient-count">
        {window.count !== null ? `${formatCount(window.count)} ${window.count === 1 ? "patient" : "patients"}` : window.error ? "Not counted." : "Counting…"}
      </p>
      <div className="split">
        <VirtualList
          count={window.count ?? 0}
          rowHeight={ROW_HEIGHT}
          height={520}
          label="Patients"
          // On a phone the columns keep a readable width and the list scrolls sideways in its box, as the Audit
          // list does: at 390 px the date of birth was cut to "1992…" with no way to read the rest.
          wide
          header={
            <div role="row" aria-rowindex={1} className="vlist-row vlist-head">
              <span className="cell" role="columnheader">Name</span>
              <span className="cell" role="columnheader">Born</span>
              <span className="cell" role="columnheader">Sex</span>
              <span className="cell" role="columnheader">Id</span>
            </div>
          }
          renderRow={renderRow}
          onRange={window.onRange}
          onOpen={open}
        />
        {selected ? <VitalsChart patient={selected} /> : <p className="muted">Choose a patient to see their vital signs.</p>}
      </div>
    </section>
  );
}

/** Patient data on screen only while the session lasts (see SessionGuard). */
export default function PatientsPage() {
  return (
    <SessionGuard title="Patients" what="the patient list">
      <PatientsView />
    </SessionGuard>
  );
}
