import { describe, expect, it, vi } from "vitest";

import { loadWithRetry } from "./lazyWithRetry";

describe("loadWithRetry", () => {
  it("retries a failed chunk load and returns the module", async () => {
    const load = vi
      .fn<() => Promise<string>>()
      .mockRejectedValueOnce(new Error("chunk failed"))
      .mockResolvedValueOnce("module");
    await expect(loadWithRetry(load, 2, 1)).resolves.toBe("module");
    expect(load).toHaveBeenCalledTimes(2);
  });

  it("gives up after the last retry", async () => {
    const load = vi.fn<() => Promise<string>>().mockRejectedValue(new Error("gone"));
    await expect(loadWithRetry(load, 2, 1)).rejects.toThrow("gone");
    expect(load).toHaveBeenCalledTimes(3);
  });
});
