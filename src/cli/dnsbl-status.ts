/**
 * `filterctl dnsbl-status`: probes every configured DNSBL now (one round each, in parallel) and
 * prints its health. Exit 0 when every list is healthy, 3 when any is not (for monitoring);
 * 1 for an invalid configuration (or a list that cannot be opened), 2 for an unreadable file.
 */

import { EXIT_OK, openRules } from "../engine/open-rules.js";
import type { RegistryOptions, SourceRegistry } from "../sources/registry.js";
import type { DnsblSource, DnsblState } from "../sources/types.js";
import { reportOpenFailure } from "./diagnostics-output.js";

export const EXIT_UNHEALTHY = 3;

export interface DnsblStatusLine {
  source: string;
  zone: string;
  state: DnsblState;
  detail: string;
}

/** One probe round for each DNSBL the registry opened, in parallel (serve's first round, waited for). */
export async function probeLists(registry: SourceRegistry): Promise<DnsblStatusLine[]> {
  const lists = registry.configs().filter((c) => c.kind === "dnsbl");
  return Promise.all(
    lists.map(async (config) => {
      const source = registry.source(config.name) as DnsblSource;
      const health = await source.probe();
      return { source: config.name, zone: source.zone, state: health.state, detail: health.detail };
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

/** `registry`: how sources are built (tests); default the real ones. */
export async function dnsblStatusCommand(
  options: { config: string; json: boolean },
  registry: RegistryOptions = {},
): Promise<number> {
  const opened = await openRules(options.config, { only: (source) => source.kind === "dnsbl", registry });
  if (opened.kind !== "opened") return reportOpenFailure(opened);
  let lines: DnsblStatusLine[];
  try {
    lines = await probeLists(opened.registry);
  } finally {
    await opened.registry.close();
  }
  process.stdout.write(
    options.json ? `${JSON.stringify({ lists: lines }, null, 2)}\n` : renderStatusTable(lines),
  );
  return lines.every((l) => l.state === "healthy") ? EXIT_OK : EXIT_UNHEALTHY;
}
