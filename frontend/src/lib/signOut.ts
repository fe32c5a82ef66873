/**
 * Signing out of the dashboard: Django's admin logout, the one the app signs in through, which takes a POST
 * with the session's CSRF token only (a GET is refused). The token's cookie is HttpOnly, so the token is read
 * from whoami (or the admin's own logout form); the form is then posted as the admin's is, and the browser
 * leaves the dashboard for the admin's "Logged out" page, the patient data of every page with it.
 */
import { getJson, WHOAMI_URL } from "./api";

export interface SignOutForm {
  action: string;
  token: string;
}

/** The admin page's logout form: its action and its CSRF token (any form's token, on a sign-in page). */
export function logoutForm(html: string, adminUrl: string): SignOutForm | null {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const form = doc.querySelector<HTMLFormElement>("#logout-form");
  const input = (form ?? doc).querySelector<HTMLInputElement>('input[name="csrfmiddlewaretoken"]');
  if (!input?.value) return null;
  const base = adminUrl.endsWith("/") ? adminUrl : `${adminUrl}/`;
  return { action: form?.getAttribute("action") || `${base}logout/`, token: input.value };
}

/** Post the logout form as a page navigation (the answer is the admin's page, not data). */
export function submitForm({ action, token }: SignOutForm, doc: Document = document): void {
  const form = doc.createElement("form");
  form.method = "post";
  form.action = action;
  form.hidden = true;
  const input = doc.createElement("input");
  input.type = "hidden";
  input.name = "csrfmiddlewaretoken";
  input.value = token;
  form.append(input);
  doc.body.append(form);
  form.submit();
}

/** The session's CSRF token from whoami (a staff session is given one), or null. */
async function whoamiToken(): Promise<string | null> {
  const answer = await getJson<{ csrf_token?: unknown }>(WHOAMI_URL);
  return typeof answer?.csrf_token === "string" && answer.csrf_token ? answer.csrf_token : null;
}

/**
 * Post the admin's logout with the session's CSRF token: whoami's, else the one in the admin's own logout form
 * (a server whose whoami gives none). Rejects, posting nothing, when neither gives a token.
 */
export async function signOut(
  adminUrl: string,
  { token = whoamiToken, load = fetch, submit = submitForm }: { token?: () => Promise<string | null>; load?: typeof fetch; submit?: (form: SignOutForm) => void } = {},
): Promise<void> {
  const base = adminUrl.endsWith("/") ? adminUrl : `${adminUrl}/`;
  const fromWhoami = await token().catch(() => null);
  if (fromWhoami) return submit({ action: `${base}logout/`, token: fromWhoami });
  const response = await load(adminUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } });
  const form = logoutForm(await response.text(), adminUrl);
  if (!form) throw new Error("The admin gave no sign-out form");
  submit(form);
}
