#!/usr/bin/env node
// Thin launcher: the real entry point is compiled to dist/ by `npm ci` (the prepare script).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    "filterctl: dist/ is missing; run `npm ci` (or `npm run build`) in the filterctl checkout\n",
  );
  process.exit(2);
}
await import(entry.href);
