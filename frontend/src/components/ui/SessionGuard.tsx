import type { ReactNode } from "react";

import { useSessionEnded } from "../../lib/session";
import { signInUrl } from "./Status";

/**
 * A page holding patient data, shown only while the session lasts. When it ends (idle logoff, a sign-out
 * elsewhere: an API 401 or the live feed's 4401) the page is unmounted, so its rows leave the screen and,
 * with the page's state, the tab's memory; a banner over them left a ward screen showing names all shift.
 */
export function SessionGuard({ title, what, children }: { title: string; what: string; children: ReactNode }) {
  const ended = useSessionEnded();
  if (!ended) return children;
  return (
    <section aria-labelledby="session-ended-title">
      <h1 id="session-ended-title">{title}</h1>
      <div role="alert" className="error" data-testid="session-ended">
        <p>
          Your session has ended, so {what} is no longer shown. <a href={signInUrl()}>Sign in again</a> to see it.
        </p>
      </div>
    </section>
  );
}
