import {
  createContext,
  createElement,
  lazy,
  Suspense,
  useContext,
  type ComponentProps,
  type ComponentType,
  type ReactNode,
} from "react";

/**
 * Which try at showing the page this is: PageErrorBoundary counts one more each time it starts over (another
 * address, back/forward). A page whose code failed to load is loaded afresh on the next try: React.lazy keeps
 * a rejected load for good, and the page stayed broken until a full reload, however long ago the server came
 * back.
 */
export const PageAttempt = createContext(0);

/**
 * React.lazy that retries a failed chunk load (a flaky network, or a deploy that replaced the chunk) before
 * giving up, waiting a little longer each time; given up, it loads again on the page's next try (PageAttempt).
 *
 * With a `fallback`, the page has a Suspense boundary of its own, shown while its code loads and retries:
 * navigation is a transition, which keeps an already shown boundary's content, so under one boundary shared
 * by every page the previous page stayed on screen, its link no longer highlighted, with no word of loading.
 */
export function lazyWithRetry<T extends ComponentType<object>>(
  load: () => Promise<{ default: T }>,
  { retries = 3, delayMs = 400, fallback }: { retries?: number; delayMs?: number; fallback?: ReactNode } = {},
): ComponentType<ComponentProps<T>> {
  const fresh = () => {
    const entry = {
      failed: false,
      attempt: Number.NaN, // the try it was last rendered in
      Page: lazy(async () => {
        try {
          return await loadWithRetry(load, retries, delayMs);
        } catch (error) {
          entry.failed = true;
          throw error;
        }
      }),
    };
    return entry;
  };
  let current = fresh();

  function LazyPage(props: ComponentProps<T>) {
    const attempt = useContext(PageAttempt);
    // Not within the try that failed: that one shows the failure (React renders a failed page again once
    // before its boundary takes over, and a fresh load there would retry forever, the failure never shown).
    if (current.failed && current.attempt !== attempt) current = fresh();
    current.attempt = attempt;
    const page = createElement(current.Page as ComponentType<ComponentProps<T>>, props);
    return fallback === undefined ? page : createElement(Suspense, { fallback }, page);
  }
  return LazyPage;
}

export async function loadWithRetry<T>(load: () => Promise<T>, retries: number, delayMs: number): Promise<T> {
  let attempt = 0;
  for (;;) {
    try {
      return await load();
    } catch (error) {
      if (attempt >= retries) throw error;
      attempt += 1;
      await new Promise((resolve) => setTimeout(resolve, delayMs * attempt));
    }
  }
}
