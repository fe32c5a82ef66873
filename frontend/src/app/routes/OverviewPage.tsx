import { useContext } from "react";

import { LivePanel } from "../../features/live/components/LivePanel";
import { isLiveSnapshot, type LiveSnapshot } from "../../features/live/snapshot";
import { ServiceTable } from "../../features/overview/components/ServiceTable";
import { SERVICES_URL, type Service, type SloStatus } from "../../features/overview/api/services";
import { LoadStatus, signInUrl } from "../../components/ui/Status";
import { useJson } from "../../lib/useJson";
import { ConfigContext } from "../config";
import { useConnectionState, useLatestMessage } from "../../lib/useLiveFeed";
import { usePageTitle } from "../../lib/usePageTitle";
import { useNow } from "../../lib/useNow";

/** How often the SLO status and the services list are read again. */
const REFRESH_MS = 30000;

export default function OverviewPage() {
  usePageTitle("Overview");
  const config = useContext(ConfigContext);
  // Read again with the SLO status: a service hidden or renamed in admin (or a role changed) stayed listed
  // until a reload, while the live rows above had dropped it.
  const services = useJson<{ results: Service[] }>(SERVICES_URL, { refreshMs: REFRESH_MS });
  const heartbeat = useLatestMessage("heartbeat");
  const latest = useLatestMessage("snapshot");
  const fromSocket = latest && isLiveSnapshot(latest.data) ? latest : null;
  const snapshot = fromSocket ? (fromSocket.data as LiveSnapshot) : isLiveSnapshot(config.snapshot) ? config.snapshot : null;
  // When this browser got it: the socket's, or the one the page was served with (read at page load).
  const receivedAt = fromSocket ? (fromSocket.receivedAt ?? null) : (config.readAt ?? null);
  const connection = useConnectionState();
  const now = useNow(1000); // ages the figures when no frame comes to re-render the page
  const slo = useJson<{ results: SloStatus[] }>("/api/v1/metrics/slo/", { refreshMs: REFRESH_MS });
  const sloBySlug = slo.status === "ready" ? Object.fromEntries(slo.data.results.map((s) => [s.service, s])) : {};

  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <p className="muted">
        Live feed: <strong data-testid="live-state">{connection}</strong>
        {heartbeat ? (
          <>
            {" "}
            · heartbeat <span data-testid="live-seq">#{heartbeat.seq}</span>
          </>
        ) : null}
      </p>
      {connection === "signed-out" ? (
        // The feed closed with "signed out" and will not retry: waiting for a snapshot would be forever.
        <p role="alert" className="error" data-testid="live-forbidden">
          The live feed stopped: this session has ended (signed out, or expired). <a href={signInUrl()}>Sign in again</a> to
          see live figures.
        </p>
      ) : connection === "forbidden" ? (
        <p role="alert" className="error" data-testid="live-forbidden">
          The live feed is not allowed for this account: it needs the permission to view metrics. Ask an administrator,
          or <a href={signInUrl()}>sign in again</a> as another user.
        </p>
      ) : (
        <LivePanel snapshot={snapshot} receivedAt={receivedAt} now={now} connection={connection} />
      )}
      <h2>Services</h2>
      <LoadStatus state={services} what="services" />
      {/* A refused or failed SLO read left every service reading "no traffic", and a failed refresh showed the
          older figures as current: both are said (the table shows the services while the status loads). */}
      {slo.status === "loading" ? null : <LoadStatus state={slo} what="the SLO status" />}
      {services.status === "ready" ? (
        <ServiceTable services={services.data.results} adminUrl={config.adminUrl} slo={sloBySlug} sloKnown={slo.status === "ready"} />
      ) : null}
    </section>
  );
}
