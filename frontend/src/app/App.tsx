import { Suspense, useContext, useEffect, useMemo, type ReactNode } from "react";
import { BrowserRouter, NavLink, Route, Routes, useLocation } from "react-router";

import { ConnectionBadge } from "../components/ui/ConnectionBadge";
import { PageErrorBoundary } from "../components/ui/PageErrorBoundary";
import { SignOutButton } from "../components/ui/SignOutButton";
import { ThemeToggle } from "../components/ui/ThemeToggle";
import { websocketUrl } from "../lib/config";
import { lazyWithRetry } from "../lib/lazyWithRetry";
import { LiveFeed } from "../lib/liveFeed";
import { getJson, WHOAMI_URL } from "../lib/api";
import { endSessionWhenIdle, keepAliveWhileActive, trackUserInput } from "../lib/session";
import { LiveFeedContext, useConnectionState, useLatestMessage } from "../lib/useLiveFeed";
import { offered, useScopes } from "../lib/useScopes";
import { ConfigContext } from "./config";
import { FocusOnNavigate } from "./FocusOnNavigate";

const loading = <p className="muted">Loading…</p>;

// One lazily loaded chunk per page, each showing "Loading…" while it loads (and retries).
const OverviewPage = lazyWithRetry(() => import("./routes/OverviewPage"), { fallback: loading });
const ServicePage = lazyWithRetry(() => import("./routes/ServicePage"), { fallback: loading });
const CachePage = lazyWithRetry(() => import("./routes/CachePage"), { fallback: loading });
const RateLimitsPage = lazyWithRetry(() => import("./routes/RateLimitsPage"), { fallback: loading });
const BenchmarksPage = lazyWithRetry(() => import("./routes/BenchmarksPage"), { fallback: loading });
const BenchmarkRunPage = lazyWithRetry(() => import("./routes/BenchmarkRunPage"), { fallback: loading });
const ScalingPage = lazyWithRetry(() => import("./routes/ScalingPage"), { fallback: loading });
const InferencePage = lazyWithRetry(() => import("./routes/InferencePage"), { fallback: loading });
const PatientsPage = lazyWithRetry(() => import("./routes/PatientsPage"), { fallback: loading });
const AuditPage = lazyWithRetry(() => import("./routes/AuditPage"), { fallback: loading });
const NotFoundPage = lazyWithRetry(() => import("./routes/NotFoundPage"), { fallback: loading });

// [path, label, the scope its API needs]: a page needing a scope is offered to its holders only (whoami).
// They come last, so waiting for whoami moves no other link.
const PAGES: [string, string, string?][] = [
  ["/cache", "Cache"],
  ["/ratelimits", "Rate limits"],
  ["/benchmarks", "Benchmarks"],
  ["/inference", "Inference"],
  ["/scaling", "Scaling"],
  ["/patients", "Patients", "patient:read"],
  ["/audit", "Audit", "audit:read"],
];

// Also where the session's CSRF token is noted (getJson keeps whoami's), for the writes and the sign-out.
const loadScopes = () => getJson<{ scopes: string[] }>(WHOAMI_URL);

function Header() {
  const config = useContext(ConfigContext);
  const state = useConnectionState();
  const heartbeat = useLatestMessage("heartbeat");
  const scopes = useScopes(loadScopes);
  return (
    <header className="header">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <a className="brand" href="/dashboard/">
        Control plane
      </a>
      <nav aria-label="Main">
        <NavLink to="/" end>
          Overview
        </NavLink>
        {PAGES.map(([to, label, scope]) => {
          const shown = offered(scopes, scope);
          // Until whoami answers, the link's room is kept (no shift when it appears) but it is neither seen
          // nor reachable: a user without the scope never glimpses it.
          if (shown === "pending") {
            return (
              <span key={to} className="nav-pending" aria-hidden="true" data-testid={`nav-pending-${to.slice(1)}`}>
                {label}
              </span>
            );
          }
          return shown ? (
            <NavLink key={to} to={to}>
              {label}
            </NavLink>
          ) : null;
        })}
      </nav>
      <div className="header-end">
        <ConnectionBadge state={state} lastSeen={heartbeat?.at ?? null} />
        <ThemeToggle />
        <a href={config.adminUrl}>Admin</a>
        {config.username ? <span className="muted">{config.username}</span> : null}
        <SignOutButton adminUrl={config.adminUrl} />
      </div>
    </header>
  );
}

/**
 * A failed page is replaced by a message, not the whole dashboard; opening another page starts over (a page
 * whose code could not be loaded loads it again).
 */
function PageBoundary({ children }: { children: ReactNode }) {
  const { pathname } = useLocation();
  return <PageErrorBoundary resetKey={pathname}>{children}</PageErrorBoundary>;
}

export function App() {
  const config = useContext(ConfigContext);
  const feed = useMemo(() => new LiveFeed(websocketUrl(config)), [config]);
  // The user's own input, which every API request reports, so the server's idle logoff ignores the polls.
  useEffect(() => trackUserInput(), []);
  // The API root: no query, no audit; it passes the session's idle check like any request.
  useEffect(() => keepAliveWhileActive(() => getJson("/api/v1/")), []);
  // An unattended tab drops its patient data when the server's idle logoff is due, not at its next request.
  useEffect(() => endSessionWhenIdle(config.sessionIdleSeconds ?? 0), [config]);
  useEffect(() => {
    feed.start();
    return () => feed.stop();
  }, [feed]);

  return (
    <LiveFeedContext.Provider value={feed}>
      <BrowserRouter basename="/dashboard">
        <FocusOnNavigate targetId="main" />
        <Header />
        <main className="main" id="main" tabIndex={-1}>
          <PageBoundary>
            <Suspense fallback={loading}>
              <Routes>
                <Route path="/" element={<OverviewPage />} />
                <Route path="/services/:slug" element={<ServicePage />} />
                <Route path="/cache" element={<CachePage />} />
                <Route path="/ratelimits" element={<RateLimitsPage />} />
                <Route path="/benchmarks" element={<BenchmarksPage />} />
                <Route path="/benchmarks/:runId" element={<BenchmarkRunPage />} />
                <Route path="/inference" element={<InferencePage />} />
                <Route path="/scaling" element={<ScalingPage />} />
                <Route path="/patients" element={<PatientsPage />} />
                <Route path="/audit" element={<AuditPage />} />
                <Route path="*" element={<NotFoundPage />} />
              </Routes>
            </Suspense>
          </PageBoundary>
        </main>
      </BrowserRouter>
    </LiveFeedContext.Provider>
  );
}
