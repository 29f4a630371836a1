/**
 * `npm run bench:lsp`: what one validation of the editor's text costs in `filterctl lsp`
 * (validateText: the loader `validate` uses, fed the text), per example file. Target: < 50 ms.
 * The first run in the process compiles the JSON Schema (the server does that on `initialized`,
 * before the first file); the figures that matter as you type are the warm ones. Wall time on a
 * shared machine is noisy, so CPU time (user + system) is shown beside it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { validateText } from "../src/lsp/diagnostics.js";

const EXAMPLES = resolve(import.meta.dirname, "../../examples");
const ROUNDS = 40;
const WARM_UP = 10;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] as number;
}

async function measure(path: string): Promise<string> {
  const text = readFileSync(path, "utf8");
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now();
    const usage = process.cpuUsage();
    await validateText(path, text);
    const used = process.cpuUsage(usage);
    wall.push(performance.now() - started);
    cpu.push((used.user + used.system) / 1000);
  }
  const warmWall = wall.slice(WARM_UP);
  const warmCpu = cpu.slice(WARM_UP);
  return `${path.slice(EXAMPLES.length + 1)}: first ${wall[0]?.toFixed(1)} ms; warm median ${median(warmWall).toFixed(1)} ms wall, ${median(warmCpu).toFixed(1)} ms CPU; max ${Math.max(...warmWall).toFixed(1)} ms wall`;
}

console.log(`load average ${loadavg()[0]?.toFixed(1)}; ${ROUNDS - WARM_UP} warm runs each`);
for (const name of readdirSync(EXAMPLES)
  .filter((f) => f.endsWith(".yaml"))
  .sort())
  console.log(await measure(join(EXAMPLES, name)));
