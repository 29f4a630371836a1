import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    setupFiles: ["test/setup-grammar.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // e2e suites start real servers (Postfix, miltertest) on fixed loopback ports: one file at a time there.
    fileParallelism: false,
    reporters: ["default"],
  },
});
