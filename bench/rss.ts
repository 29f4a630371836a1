/**
 * `npm run bench:rss`: where `filterctl serve`'s memory goes (targets: < 64 MB idle with
 * examples/rules.yaml, < 100 MB with 1000 idle negotiated connections).
 *
 * Prints one table: bare Node, serve idle, serve with 1000 connections, and what each module
 * costs when it is imported alone into a bare Node (modules share costs: Node's CommonJS loader,
 * node: built-ins, so the rows do not add up). Serve runs on a copy of examples/ in a
 * temporary folder (list and maildir sources are local files; the DNSBL fails softly on a machine
 * without DNS). RSS is VmRSS of /proc/PID/status after the process has settled.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MilterClient, POSTFIX_MACROS } from "../src/milter/index.js";
import { statusField } from "./proc.js";
import { freePort } from "./serve.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "bin/filterctl.js");
const SETTLE_MS = 1500;
const CONNECTIONS = 1000;

/**
 * Modules imported alone: the packages serve may load (prom-client only with --metrics; Chevrotain,
 * from its one-file bundle through dist/dsl/chevrotain.js, only when a rule needs the grammar's
 * parser; not ajv: the schema is checked by the generated schema/rules.validate.cjs), then our own
 * layers from dist/.
 */
const MODULES = [
  "pino",
  "prom-client",
  "dist/dsl/chevrotain.js",
  "re2js",
  "yaml",
  "commander",
  "dist/config/load.js",
  "dist/dsl/compile.js",
  "dist/engine/service.js",
  "dist/engine/metrics.js",
  "dist/cli/logging.js",
  "dist/cli/serve.js",
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssMb = (pid: number) => statusField(pid, "VmRSS") / 1024;

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

/** RSS of a bare Node that imports `specifier` (nothing when undefined) and then idles. */
async function importedAlone(specifier: string | undefined): Promise<number> {
  const target =
    specifier === undefined
      ? ""
      : specifier.startsWith("dist/")
        ? `await import(${JSON.stringify(new URL(specifier, `file://${ROOT}`).href)});`
        : `await import(${JSON.stringify(specifier)});`;
  const child = spawn(
    process.execPath,
    // As bin/filterctl.js does for serve: otherwise the young generation's growth while loading
    // (up to 14 MB) would be counted as the module's cost.
    ["--semi-space-growth-factor=1", "--input-type=module", "-e", `${target} setInterval(() => {}, 1000);`],
    { cwd: ROOT, stdio: "ignore" },
  );
  await sleep(SETTLE_MS);
  const rss = rssMb(child.pid as number);
  await stop(child);
  return rss;
}

/** Starts serve on a copy of examples/ and resolves once it listens. */
async function startServe(dir: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--config", join(dir, "rules.yaml"), "--listen", `inet:${port}@127.0.0.1`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen:\n${out}`)), 30_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
      if (out.includes('"milter listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}:\n${out}`)));
  });
  // Keep draining its log so a full pipe never stalls it.
  child.stdout?.removeAllListeners("data");
  child.stdout?.resume();
  return child;
}

async function serveFigures(): Promise<{ idle: number; connected: number }> {
  const dir = mkdtempSync(join(tmpdir(), "filterctl-rss-"));
  cpSync(join(ROOT, "examples"), dir, { recursive: true });
  const port = await freePort();
  const child = await startServe(dir, port);
  try {
    await sleep(SETTLE_MS * 2);
    const idle = rssMb(child.pid as number);
    const clients: MilterClient[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const client = await MilterClient.connect(`inet:${port}@127.0.0.1`, 10_000, { mta: POSTFIX_MACROS });
      await client.negotiate();
      clients.push(client);
    }
    await sleep(SETTLE_MS);
    const connected = rssMb(child.pid as number);
    for (const client of clients) client.destroy();
    return { idle, connected };
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const bare = await importedAlone(undefined);
  const { idle, connected } = await serveFigures();
  const rows: [string, string, string][] = [
    ["bare node (setInterval)", bare.toFixed(1), ""],
    ["serve examples/rules.yaml, idle", idle.toFixed(1), `+${(idle - bare).toFixed(1)}`],
    [
      `serve + ${CONNECTIONS} negotiated connections`,
      connected.toFixed(1),
      `+${(connected - idle).toFixed(1)} (${(((connected - idle) * 1024) / CONNECTIONS).toFixed(1)} kB each)`,
    ],
  ];
  for (const specifier of MODULES) {
    const rss = await importedAlone(specifier);
    rows.push([`import ${specifier} alone`, rss.toFixed(1), `+${(rss - bare).toFixed(1)}`]);
  }
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log(`${"what".padEnd(width)} | RSS MB | over bare node / idle`);
  console.log(`${"-".repeat(width)} | ------ | ---------------------`);
  for (const [name, rss, delta] of rows) console.log(`${name.padEnd(width)} | ${rss.padStart(6)} | ${delta}`);
  console.log("\ntargets: serve idle < 64 MB, with 1000 connections < 100 MB");
}

await main();
