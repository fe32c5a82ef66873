import { useState } from "react";

import { signOut } from "../../lib/signOut";

/** The header's "Sign out": ends the staff session (a shared ward PC is left signed out, not just closed). */
export function SignOutButton({ adminUrl }: { adminUrl: string }) {
  const [state, setState] = useState<"idle" | "pending" | "failed">("idle");
  const onClick = () => {
    setState("pending");
    signOut(adminUrl).catch(() => setState("failed"));
  };
  return (
    <>
      <button type="button" className="link-button" onClick={onClick} disabled={state === "pending"}>
        Sign out
      </button>
      {state === "failed" ? (
        <span role="alert" className="bad">
          Sign-out failed: try again, or close the browser
        </span>
      ) : null}
    </>
  );
}
