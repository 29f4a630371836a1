/** Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): where the self time goes, by function and by file. */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (url === "") return "(native/VM)";
  const at = url.search(/\/(src|bench)\//);
  if (at !== -1) return url.slice(at + 1);
  return url.replace(/^file:\/\//, "").replace(/^node:/, "node:");
}

export function summariseProfile(path: string, top = 25): string {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    if (frame.functionName === "(idle)") {
      idle += us;
      continue;
    }
    total += us;
    const file = shortUrl(frame.url);
    const name = `${frame.functionName || "(anonymous)"}  ${file}${frame.url ? `:${frame.lineNumber + 1}` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  const lines: string[] = [];
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  lines.push(
    `busy ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms (self time, all phases)`,
  );
  lines.push("by file:");
  for (const [file, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 15))
    lines.push(`  ${pct(us)}  ${file}`);
  lines.push(`top ${top} functions:`);
  for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`  ${pct(us)}  ${name}`);
  return lines.join("\n");
}
