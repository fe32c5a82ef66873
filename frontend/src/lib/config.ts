/** Runtime configuration that Django injects into the page (see apps/core/views.py). */
export interface DashboardConfig {
  websocketUrl: string;
  livePort: number | null;
  adminUrl: string;
  username: string;
  /** The server's idle logoff (SESSION_IDLE_SECONDS; 0 is off): this tab ends its session at the same time. */
  sessionIdleSeconds?: number;
  /** The live snapshot when the page was served, shown until the socket sends a newer one. */
  snapshot: unknown;
  /** When this browser read the configuration (ms since the epoch): the age of `snapshot`. */
  readAt?: number;
}

const defaults: DashboardConfig = { websocketUrl: "", livePort: null, adminUrl: "/admin/", username: "", sessionIdleSeconds: 0, snapshot: null };

export function readConfig(doc: Document = document): DashboardConfig {
  const element = doc.getElementById("controlplane-config");
  if (!element?.textContent) return defaults;
  try {
    return { ...defaults, ...(JSON.parse(element.textContent) as Partial<DashboardConfig>), readAt: Date.now() };
  } catch {
    return defaults;
  }
}

/** The live feed's address: configured outright, or this page's host on the live port. */
export function websocketUrl(config: DashboardConfig, location: Location = window.location): string {
  if (config.websocketUrl) return config.websocketUrl;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const host = config.livePort ? `${location.hostname}:${config.livePort}` : location.host;
  return `${scheme}//${host}/ws/metrics/`;
}
