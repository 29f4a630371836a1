import { spawnSync } from "node:child_process";

/**
 * Tests that run the real `filterctl` binary need dist/ to match the sources. tsc still emits
 * JavaScript when it finds type errors: those are shown here, and `npm test` (which runs
 * `npm run build` first) fails on them, so a half-edited file elsewhere does not stop every test.
 */
export default function setup(): void {
  const result = spawnSync(
    process.execPath,
    ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"],
    {
      encoding: "utf8",
    },
  );
  if (result.status !== 0)
    process.stderr.write(`global setup: tsc reported errors:\n${result.stdout}${result.stderr}`);
}
