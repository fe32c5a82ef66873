import { useEffect, useState } from "react";

import { applyTheme, initialTheme, type Theme } from "../../lib/theme";

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(() => initialTheme());
  useEffect(() => applyTheme(theme), [theme]);
  const next = theme === "dark" ? "light" : "dark";
  return (
    <button type="button" className="link-button" onClick={() => setTheme(next)} aria-label={`Switch to the ${next} theme`}>
      {theme === "dark" ? "Light theme" : "Dark theme"}
    </button>
  );
}
