import { cleanup, render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

// uPlot draws on a canvas jsdom does not have.
vi.mock("../../components/ui/Chart", () => ({ Chart: () => null }));

import InferencePage from "./InferencePage";

const deployment = (fields: Record<string, unknown>) => ({
  id: 1, name: "clinical-embeddings", task: "embedding", source: "bundled:all-minilm-l6-v2", service: null,
  enabled: true, quantization: "auto", serving_quantization: "fp32", serving_reason: null,
  chosen_quantization: null, load_failure: null, load_failed_at: null, measured_at: null, max_batch_size: 32,
  max_queue_delay_ms: 10, slo_p95_ms: 300, fidelity_budget: 0.02, profiles: [], ...fields,
});

function serve(results: unknown[]) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) =>
      url.startsWith("/api/v1/inference/deployments/")
        ? new Response(JSON.stringify({ results }), { status: 200, headers: { "Content-Type": "application/json" } })
        : new Response(JSON.stringify({ detail: "No." }), { status: 403 }),
    ),
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("InferencePage serving mode", () => {
  it("shows the mode actually serving and why, not the measured one it fell back from", async () => {
    serve([deployment({ chosen_quantization: "nf4", serving_reason: "its measured nf4 cannot run here (bitsandbytes is not installed on this host)" })]);
    render(
      <MemoryRouter>
        <InferencePage />
      </MemoryRouter>,
    );
    expect((await screen.findByTestId("serving-clinical-embeddings")).textContent).toBe("fp32");
    expect(screen.getByTestId("serving-reason-clinical-embeddings").textContent).toBe(
      "Serving fp32, not nf4: its measured nf4 cannot run here (bitsandbytes is not installed on this host).",
    );
    expect(screen.queryByTestId("load-failure-clinical-embeddings")).toBeNull();
  });

  it("shows the model kept after an edit failed to load, and the recorded failure", async () => {
    serve([
      deployment({
        quantization: "bf16", serving_reason: "bf16 did not load: MemoryError: out of memory; the fp32 model loaded before answers",
        load_failure: "bf16 did not load: MemoryError: out of memory on pod-1 (process 7); still serving the fp32 model loaded before",
        load_failed_at: "2026-12-05T07:00:00Z",
      }),
    ]);
    render(
      <MemoryRouter>
        <InferencePage />
      </MemoryRouter>,
    );
    expect((await screen.findByTestId("serving-clinical-embeddings")).textContent).toBe("fp32");
    expect(screen.getByTestId("serving-reason-clinical-embeddings").textContent).toContain("Serving fp32, not bf16: bf16 did not load");
    expect(screen.getByTestId("load-failure-clinical-embeddings").textContent).toContain("still serving the fp32 model loaded before");
  });

  it("says nothing more where the mode asked for is the one serving", async () => {
    serve([deployment({ quantization: "int8", serving_quantization: "int8" })]);
    render(
      <MemoryRouter>
        <InferencePage />
      </MemoryRouter>,
    );
    expect((await screen.findByTestId("serving-clinical-embeddings")).textContent).toBe("int8");
    expect(screen.queryByTestId("serving-reason-clinical-embeddings")).toBeNull();
  });
});
