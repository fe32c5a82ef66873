import type { FieldErrors } from "../../lib/api";
import type { Loadable } from "../../lib/useJson";

/** A message as a sentence: a period only where it has no closing punctuation of its own. */
export function sentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?…]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** The admin's sign-in, back to this page afterwards. */
export function signInUrl(location: Pick<Location, "pathname" | "search"> = window.location): string {
  return `/admin/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
}

/** A field's name as a reader says it: "resource_type" -> "Resource type"; messages for no one field -> "". */
export function fieldLabel(name: string, labels: Record<string, string> = {}): string {
  if (labels[name]) return labels[name];
  if (name === "non_field_errors") return "";
  const words = name.replace(/[_.]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * Why something could not be loaded: a 401 links to the sign-in, a 403 says a permission is missing, and a
 * 400's field-level messages are listed by field (those in `shown` are by their inputs instead).
 */
export function LoadError({
  what,
  message,
  code,
  fields = {},
  labels,
  shown = [],
}: {
  what: string;
  message: string;
  code: number | null;
  fields?: FieldErrors;
  labels?: Record<string, string>;
  shown?: string[];
}) {
  const listed = Object.entries(fields).filter(([name]) => !shown.includes(name));
  const byInputs = Object.keys(fields).some((name) => shown.includes(name));
  return (
    <div role="alert" className="error">
      <p>
        Could not load {what}: {sentence(message)}
        {byInputs ? " See the message by the field." : null}
        {code === 401 ? (
          <>
            {" "}
            <a href={signInUrl()}>Sign in again</a> to see it.
          </>
        ) : null}
        {code === 403 ? " Your account lacks the permission for it; ask an administrator." : null}
      </p>
      {listed.length ? (
        <ul data-testid="field-errors">
          {listed.map(([name, messages]) => {
            const label = fieldLabel(name, labels);
            return (
              <li key={name}>
                {label ? `${label}: ` : ""}
                {messages.map(sentence).join(" ")}
              </li>
            );
          })}
        </ul>
      ) : null}
    </div>
  );
}

/** The id of a field's message, for the input's aria-describedby. */
export function fieldMessageId(form: string, name: string): string {
  return `${form}-${name}-error`;
}

/** A field's own messages from the server, shown by its input (which points at it with aria-describedby). */
export function FieldMessage({ form, name, fields }: { form: string; name: string; fields?: FieldErrors }) {
  const messages = fields?.[name];
  if (!messages?.length) return null;
  return (
    <span id={fieldMessageId(form, name)} className="field-error">
      {messages.map(sentence).join(" ")}
    </span>
  );
}

/** The attributes that tie an input to its message: invalid while the server refused its value. */
export function fieldProps(form: string, name: string, fields?: FieldErrors) {
  return fields?.[name]?.length ? { "aria-invalid": true, "aria-describedby": fieldMessageId(form, name) } : {};
}

/** What a page shows while its data loads or when it could not be loaded. */
export function LoadStatus({ state, what }: { state: Loadable<unknown>; what: string }) {
  if (state.status === "loading") return <p className="muted">Loading {what}…</p>;
  if (state.status === "error") return <LoadError what={what} message={state.message} code={state.code} fields={state.fields} />;
  if (state.refreshError) {
    return (
      <p role="status" className="warn" data-testid="refresh-error">
        Could not refresh {what}: {sentence(state.refreshError.message)} Showing what was loaded before; trying again.
      </p>
    );
  }
  return null;
}
