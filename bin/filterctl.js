#!/usr/bin/env node
// Thin launcher: the real entry point is compiled to dist/ by `npm ci` (the prepare script).
import { existsSync } from "node:fs";
import { setFlagsFromString } from "node:v8";

// Node opens its inspector (a debugger on 127.0.0.1:9229) when SIGUSR1 arrives and no listener
// is installed: anyone allowed to signal the daemon would get a debugger into it. Node 20 has no
// --disable-sigusr1, and a listener is what stops it, so one is installed before anything else.
process.on("SIGUSR1", () => {});

// `serve` keeps V8's young generation from growing while it loads and compiles, and lets it grow
// again once it listens (why: youngGenerationMayGrow in src/cli/serve.ts). Loading the modules is
// most of that growth, so it starts here, before the first import.
if (process.argv[2] === "serve") setFlagsFromString("--semi-space-growth-factor=1");

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    "filterctl: dist/ is missing; run `npm ci` (or `npm run build`) in the filterctl checkout\n",
  );
  process.exit(2);
}
await import(entry.href);
