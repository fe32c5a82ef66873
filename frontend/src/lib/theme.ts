export type Theme = "light" | "dark";

const KEY = "controlplane-theme";

/** The stored choice, else the system's. */
export function initialTheme(storage: Pick<Storage, "getItem"> = window.localStorage): Theme {
  const stored = storage.getItem(KEY);
  if (stored === "light" || stored === "dark") return stored;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(theme: Theme, storage: Pick<Storage, "setItem"> = window.localStorage): void {
  document.documentElement.dataset.theme = theme;
  storage.setItem(KEY, theme);
}

/** Calls `onChange` whenever the page's theme changes (the <html> element's data-theme); returns the unsubscribe. */
export function subscribeTheme(onChange: () => void): () => void {
  const observer = new MutationObserver(onChange);
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  return () => observer.disconnect();
}

export function currentTheme(): string {
  return document.documentElement.dataset.theme ?? "";
}
