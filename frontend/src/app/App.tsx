import { Suspense, useContext, useEffect, useMemo } from "react";
import { BrowserRouter, NavLink, Route, Routes } from "react-router";

import { ConnectionBadge } from "../components/ui/ConnectionBadge";
import { websocketUrl } from "../lib/config";
import { lazyWithRetry } from "../lib/lazyWithRetry";
import { LiveFeed } from "../lib/liveFeed";
import { LiveFeedContext, useConnectionState, useLatestMessage } from "../lib/useLiveFeed";
import { ConfigContext } from "./config";

// One lazily loaded chunk per page.
const OverviewPage = lazyWithRetry(() => import("./routes/OverviewPage"));
const NotFoundPage = lazyWithRetry(() => import("./routes/NotFoundPage"));

function Header() {
  const config = useContext(ConfigContext);
  const state = useConnectionState();
  const heartbeat = useLatestMessage("heartbeat");
  return (
    <header className="header">
      <a className="brand" href="/dashboard/">
        Control plane
      </a>
      <nav aria-label="Main">
        <NavLink to="/" end>
          Overview
        </NavLink>
      </nav>
      <div className="header-end">
        <ConnectionBadge state={state} lastSeen={heartbeat?.at ?? null} />
        <a href={config.adminUrl}>Admin</a>
        {config.username ? <span className="muted">{config.username}</span> : null}
      </div>
    </header>
  );
}

export function App() {
  const config = useContext(ConfigContext);
  const feed = useMemo(() => new LiveFeed(websocketUrl(config)), [config]);
  useEffect(() => {
    feed.start();
    return () => feed.stop();
  }, [feed]);

  return (
    <LiveFeedContext.Provider value={feed}>
      <BrowserRouter basename="/dashboard">
        <Header />
        <main className="main">
          <Suspense fallback={<p className="muted">Loading…</p>}>
            <Routes>
              <Route path="/" element={<OverviewPage />} />
              <Route path="*" element={<NotFoundPage />} />
            </Routes>
          </Suspense>
        </main>
      </BrowserRouter>
    </LiveFeedContext.Provider>
  );
}
