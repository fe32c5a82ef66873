import { lazy, type ComponentType, type LazyExoticComponent } from "react";

/**
 * React.lazy that retries a failed chunk load (a flaky network, or a deploy that replaced the
 * chunk) before giving up, waiting a little longer each time.
 */
export function lazyWithRetry<T extends ComponentType<object>>(
  load: () => Promise<{ default: T }>,
  { retries = 3, delayMs = 400 }: { retries?: number; delayMs?: number } = {},
): LazyExoticComponent<T> {
  return lazy(() => loadWithRetry(load, retries, delayMs));
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
