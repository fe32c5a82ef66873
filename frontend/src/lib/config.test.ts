import { describe, expect, it } from "vitest";

import { readConfig, websocketUrl } from "./config";

const base = { websocketUrl: "", livePort: null, adminUrl: "/admin/", username: "", sessionIdleSeconds: 0, snapshot: null };

describe("websocketUrl", () => {
  it("uses the live port on the page's own host", () => {
    const location = { protocol: "http:", hostname: "localhost", host: "localhost:8000" } as Location;
    expect(websocketUrl({ ...base, livePort: 8001 }, location)).toBe("ws://localhost:8001/ws/metrics/");
  });

  it("uses the page's origin behind an ingress, with wss under https", () => {
    const location = { protocol: "https:", hostname: "cp.example.org", host: "cp.example.org" } as Location;
    expect(websocketUrl(base, location)).toBe("wss://cp.example.org/ws/metrics/");
  });

  it("reads the configuration Django injected and survives a broken one", () => {
    document.body.innerHTML = '<script id="controlplane-config" type="application/json">{"livePort": 9001}</script>';
    expect(readConfig().livePort).toBe(9001);
    document.body.innerHTML = '<script id="controlplane-config" type="application/json">{oops</script>';
    expect(readConfig()).toEqual(base);
  });
});
