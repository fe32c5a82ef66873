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
