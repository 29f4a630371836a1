/**
 * `filterctl dnsbl-status`: probes every configured DNSBL now (one round each, in parallel) and
 * prints its health. Exit 0 when every list is healthy, 3 when any is not (for monitoring);
 * 1 for an invalid configuration, 2 for an unreadable file.
 */

import { hasErrors } from "../common/diagnostics.js";
import type { DnsblSourceConfig } from "../config/types.js";
import { loadRules } from "../engine/load-rules.js";
import { createDnsblSource } from "../sources/dnsbl.js";
import type { DnsblState, SourceContext, SourceLogger } from "../sources/types.js";
import { renderDiagnostic, summary } from "./diagnostics-output.js";
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE } from "./validate.js";

export const EXIT_UNHEALTHY = 3;

export interface DnsblStatusLine {
  source: string;
  zone: string;
  state: DnsblState;
  detail: string;
}

const silent: SourceLogger = { info() {}, warn() {}, error() {} };

/** One probe round for each DNSBL of the configuration, in parallel. */
export async function probeLists(
  lists: readonly DnsblSourceConfig[],
  ctx: SourceContext,
): Promise<DnsblStatusLine[]> {
  return Promise.all(
    lists.map(async (config) => {
      const source = createDnsblSource(config, ctx);
      try {
        const health = await source.probe();
        return { source: config.name, zone: source.zone, state: health.state, detail: health.detail };
      } finally {
        await source.close();
      }
    }),
  );
}

export function renderStatusTable(lines: readonly DnsblStatusLine[]): string {
  if (lines.length === 0) return "no DNSBL sources are configured\n";
  const header: DnsblStatusLine = {
    source: "SOURCE",
    zone: "ZONE",
    state: "STATE" as DnsblState,
    detail: "DETAIL",
  };
  const rows = [header, ...lines];
  const width = (pick: (l: DnsblStatusLine) => string) => Math.max(...rows.map((r) => pick(r).length));
  const ws = width((l) => l.source);
  const wz = width((l) => l.zone);
  const wt = width((l) => l.state);
  const text = rows.map((r) =>
    `${r.source.padEnd(ws)}  ${r.zone.padEnd(wz)}  ${r.state.padEnd(wt)}  ${r.detail}`.trimEnd(),
  );
  const bad = lines.filter((l) => l.state !== "healthy").length;
  text.push(
    "",
    bad === 0
      ? `${lines.length} list${lines.length === 1 ? "" : "s"}, all healthy`
      : `${bad} of ${lines.length} list${lines.length === 1 ? "" : "s"} not healthy: switched off, they block nothing`,
  );
  return `${text.join("\n")}\n`;
}

export async function dnsblStatusCommand(options: { config: string; json: boolean }): Promise<number> {
  const loaded = await loadRules(options.config);
  if (loaded.kind === "unreadable") {
    process.stderr.write(`filterctl: ${loaded.message}\n`);
    return EXIT_USAGE;
  }
  const config = loaded.config;
  if (config === undefined || hasErrors(loaded.diagnostics)) {
    for (const d of loaded.diagnostics) process.stderr.write(`${renderDiagnostic(d, loaded.file)}\n`);
    process.stderr.write(`${loaded.file.path}: invalid (${summary(loaded.diagnostics)})\n`);
    return EXIT_INVALID;
  }
  const lists = [...config.sources.values()].filter((s): s is DnsblSourceConfig => s.type === "dnsbl");
  const ctx: SourceContext = { configPath: config.file.path, logger: silent };
  if (config.dns.servers !== undefined) ctx.dnsServers = config.dns.servers;
  const lines = await probeLists(lists, ctx);
  process.stdout.write(
    options.json ? `${JSON.stringify({ lists: lines }, null, 2)}\n` : renderStatusTable(lines),
  );
  return lines.every((l) => l.state === "healthy") ? EXIT_OK : EXIT_UNHEALTHY;
}
