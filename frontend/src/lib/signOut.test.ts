import { describe, expect, it, vi } from "vitest";

import { logoutForm, signOut } from "./signOut";

// The admin's header, as Django 5's admin/base.html renders it.
const ADMIN_PAGE = `<html><body><div id="user-tools"><form id="logout-form" method="post" action="/admin/logout/">
<input type="hidden" name="csrfmiddlewaretoken" value="tok123"><button type="submit">Log out</button></form></div></body></html>`;

describe("signOut", () => {
  it("posts the admin's logout with the CSRF token whoami gives the session", async () => {
    const load = vi.fn();
    const submit = vi.fn();
    await signOut("/admin/", { token: async () => "from-whoami", load: load as unknown as typeof fetch, submit });
    expect(submit).toHaveBeenCalledWith({ action: "/admin/logout/", token: "from-whoami" });
    expect(load).not.toHaveBeenCalled();
  });

  it("reads the admin's logout form, token and all, when whoami gives no token", async () => {
    const load = vi.fn(async () => new Response(ADMIN_PAGE, { status: 200 }));
    const submit = vi.fn();
    await signOut("/admin/", { token: async () => null, load: load as unknown as typeof fetch, submit });
    expect(load).toHaveBeenCalledWith("/admin/", expect.objectContaining({ credentials: "same-origin", cache: "no-store" }));
    expect(submit).toHaveBeenCalledWith({ action: "/admin/logout/", token: "tok123" });
  });

  it("takes a sign-in page's token, posting to the admin's logout", () => {
    const login = `<form method="post" action="/admin/login/"><input type="hidden" name="csrfmiddlewaretoken" value="t2"></form>`;
    expect(logoutForm(login, "/admin")).toEqual({ action: "/admin/logout/", token: "t2" });
  });

  it("fails, rather than posting nothing, when the admin gives no token", async () => {
    const submit = vi.fn();
    await expect(signOut("/admin/", { token: async () => { throw new Error("503"); }, load: (async () => new Response("<p>down</p>")) as unknown as typeof fetch, submit })).rejects.toThrow();
    expect(submit).not.toHaveBeenCalled();
  });
});
