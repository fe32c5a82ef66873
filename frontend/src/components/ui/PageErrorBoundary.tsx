import { Component, type ReactNode } from "react";

import { PageAttempt } from "../../lib/lazyWithRetry";
import { sentence } from "./Status";

interface Props {
  /**
   * The page's address: a boundary that failed starts over when it changes (another page, back/forward), a
   * page whose code failed to load loading it afresh (PageAttempt).
   */
  resetKey: string;
  children: ReactNode;
}

interface State {
  error: Error | null;
  resetKey: string;
  attempt: number;
}

/**
 * What a page that throws while rendering leaves on screen: a message under the header, whose links still
 * work. Without it React unmounted the whole dashboard, header and all, and a ward screen showed a blank
 * page: an API answer of an unexpected shape, a chunk that could not be loaded after its retries.
 */
export class PageErrorBoundary extends Component<Props, State> {
  state: State = { error: null, resetKey: this.props.resetKey, attempt: 0 };

  static getDerivedStateFromError(error: unknown): Partial<State> {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  static getDerivedStateFromProps(props: Props, state: State): Partial<State> | null {
    return props.resetKey === state.resetKey
      ? null
      : { error: null, resetKey: props.resetKey, attempt: state.attempt + 1 };
  }

  render() {
    const { error, attempt } = this.state;
    if (!error) return <PageAttempt.Provider value={attempt}>{this.props.children}</PageAttempt.Provider>;
    return (
      <div role="alert" className="error" data-testid="page-failed">
        <p>This page could not be shown: {sentence(error.message || "an unexpected error")}</p>
        <p>
          The other pages may still work. If the dashboard has just been updated, reloading loads its new version.{" "}
          <button type="button" onClick={() => window.location.reload()}>
            Reload the page
          </button>
        </p>
      </div>
    );
  }
}
