/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built into ../static/dashboard, which Django serves (whitenoise) under /static/dashboard/.
export default defineConfig({
  base: "/static/dashboard/",
  plugins: [react()],
  build: {
    outDir: "../static/dashboard",
    emptyOutDir: true,
    target: "es2022",
    // .vite/manifest.json: which chunks each page loads, for the size budgets (bench/frontend.py).
    manifest: true,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/admin": "http://127.0.0.1:8000",
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
