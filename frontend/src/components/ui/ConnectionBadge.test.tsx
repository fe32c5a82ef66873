import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { ConnectionBadge } from "./ConnectionBadge";

afterEach(cleanup);

describe("ConnectionBadge", () => {
  it("announces the feed's state, not every heartbeat's time", () => {
    const { rerender } = render(<ConnectionBadge state="open" lastSeen="2026-12-05T01:00:00Z" />);
    expect(screen.getByRole("status").textContent).toBe("Live");
    rerender(<ConnectionBadge state="open" lastSeen="2026-12-05T01:00:05Z" />);
    expect(screen.getByRole("status").textContent).toBe("Live");
    expect(document.querySelector(".badge")!.textContent).toContain(new Date("2026-12-05T01:00:05Z").toLocaleTimeString(undefined, { timeZoneName: "short" }));
    rerender(<ConnectionBadge state="reconnecting" />);
    expect(screen.getByRole("status").textContent).toBe("Reconnecting…");
  });
});
