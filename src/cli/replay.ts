/**
 * `filterctl replay --config CANDIDATE.yaml JOURNAL... [--json] [--live]`: yesterday's traffic
 * (the journal of `serve --journal`) run through candidate rules, and the transactions whose
 * outcome would change, grouped by change, with a few examples each, then totals.
 *
 * Exit 0 whatever changed; 1 the candidate is invalid (file:line:col) or its sources cannot be
 * opened; 2 a journal cannot be read (missing, unreadable), or a usage error. A malformed line is
 * reported on stderr with file:line and skipped: one torn line (a crash mid-write) must not hide
 * a day of traffic.
 */
import { JournalReadError, journalLines, unreadableJournal } from "../engine/journal/read.js";
import {
  type ReplayExample,
  type ReplayReport,
  replayJournal,
  type SkippedLine,
} from "../engine/journal/replay.js";
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, openRules } from "../engine/open-rules.js";
import { closeState } from "../engine/state/open.js";
import { reportOpenFailure } from "./diagnostics-output.js";
import { lookOnly } from "./dry-run.js";

export interface ReplayOptions {
  config: string;
  json: boolean;
  /** Ask every lookup of the live sources, not the journal. */
  live: boolean;
}

export async function replayCommand(journals: string[], options: ReplayOptions): Promise<number> {
  if (journals.length === 0) {
    process.stderr.write("filterctl: replay needs at least one journal file\n");
    return EXIT_USAGE;
  }
  const unreadable = await unreadableJournal(journals);
  if (unreadable !== undefined) {
    process.stderr.write(`filterctl: ${unreadable}\n`);
    return EXIT_USAGE;
  }
  const opened = await openRules(options.config);
  if (opened.kind !== "opened") return reportOpenFailure(opened);
  const sources = opened.registry;
  const state = await lookOnly(opened);
  if (state === undefined) return EXIT_INVALID;
  try {
    // DNSBLs are off until their first probe: asked live, they answer as serve would.
    await sources.probeDnsbls();
    // Read as they are replayed: a journal is not held whole.
    const skipped: SkippedLine[] = [];
    const report = await replayJournal(opened.ruleset, journalLines(journals, skipped), {
      live: sources,
      allLive: options.live,
      skipped,
    });
    for (const s of skipped) process.stderr.write(`${s.file}:${s.line}: skipped: ${s.message}\n`);
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderReplay(report));
  } catch (error) {
    if (!(error instanceof JournalReadError)) throw error;
    process.stderr.write(`filterctl: ${error.message}\n`);
    return EXIT_USAGE;
  } finally {
    await sources.close();
    await closeState(state, { warn: () => {}, info: () => {} });
  }
  return EXIT_OK;
}

function exampleLine(e: ReplayExample): string {
  const from = e.from === null ? "no MAIL" : `from <${e.from}>`;
  const to = e.rcpts.length > 0 ? `  to ${e.rcpts.join(", ")}` : "";
  const queue = e.queue_id === undefined ? "" : `  queue ${e.queue_id}`;
  return `  ${e.time}  ${e.client}  ${from}${to}${queue}  (${e.at})`;
}

export function renderReplay(report: ReplayReport): string {
  const lines: string[] = [];
  for (const group of report.groups) {
    const n = group.count === 1 ? "1 transaction" : `${group.count} transactions`;
    lines.push(`${group.change}: ${n}`);
    for (const example of group.examples) lines.push(exampleLine(example));
    if (group.count > group.examples.length)
      lines.push(`  … and ${group.count - group.examples.length} more`);
  }
  if (report.groups.length > 0) lines.push("");
  const { replayed, changed, unchanged, skipped } = report.totals;
  const totals = [`replayed ${replayed}`, `changed ${changed}`, `unchanged ${unchanged}`];
  if (skipped > 0) totals.push(`skipped ${skipped} malformed line${skipped === 1 ? "" : "s"}`);
  lines.push(totals.join(", "));
  if (report.askedLive > 0)
    lines.push(`(${report.askedLive} lookups not in the journal were asked of the live sources)`);
  return `${lines.join("\n")}\n`;
}
