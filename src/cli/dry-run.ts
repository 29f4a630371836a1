/**
 * `filterctl dry-run`: one SMTP transaction through the rules with the live sources, printed
 * stage by stage (each rule, each lookup with its answer and time, each reply as the MTA would
 * send it). Exit 0 whatever the decision; 1 invalid rules or sources that cannot be opened; 2 a
 * usage error or an unreadable file.
 */
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { type DryRunInput, type DryRunReport, dryRun, type StageReport } from "../engine/dry-run.js";
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, type OpenedRules, openRules } from "../engine/open-rules.js";
import {
  closeState,
  type OpenState,
  openState,
  type StateLogger,
  stateLookups,
} from "../engine/state/open.js";
import { reportOpenFailure } from "./diagnostics-output.js";

export interface DryRunOptions {
  config: string;
  clientIp: string;
  clientName?: string;
  helo?: string;
  from: string;
  rcpt: string[];
  header?: string[];
  message?: string;
  auth?: string;
  /** SIZE= announced at MAIL FROM, in bytes. */
  size?: number;
  json: boolean;
}

export class UsageError extends Error {}

/** Splits an RFC 5322 message into unfolded headers and the body. */
export function parseMessage(raw: Buffer): { headers: { name: string; value: string }[]; body: Buffer } {
  const text = raw.toString("latin1");
  const separator = /\r?\n\r?\n/.exec(text);
  const headerText = separator ? text.slice(0, separator.index) : text;
  const bodyStart = separator ? separator.index + separator[0].length : raw.length;
  const headers: { name: string; value: string }[] = [];
  for (const line of headerText.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && headers.length > 0) {
      const last = headers[headers.length - 1] as { name: string; value: string };
      last.value += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    headers.push({ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).replace(/^ /, "") });
  }
  const utf8 = headers.map((h) => ({
    name: h.name,
    value: Buffer.from(h.value, "latin1").toString("utf8"),
  }));
  return { headers: utf8, body: raw.subarray(bodyStart) };
}

export function parseHeaderOption(text: string): { name: string; value: string } {
  const colon = text.indexOf(":");
  if (colon <= 0) throw new UsageError(`--header '${text}': expected 'Name: value'`);
  return { name: text.slice(0, colon).trim(), value: text.slice(colon + 1).trim() };
}

export async function dryRunCommand(options: DryRunOptions): Promise<number> {
  // `--rcpt` collects into a list that defaults to empty, so the option parser cannot see it missing.
  if (options.rcpt.length === 0) {
    process.stderr.write("filterctl: dry-run needs at least one --rcpt ADDRESS (repeat it for several)\n");
    return EXIT_USAGE;
  }
  if (isIP(options.clientIp) === 0) {
    process.stderr.write(`filterctl: --client-ip '${options.clientIp}' is not an IP address\n`);
    return EXIT_USAGE;
  }
  let headers: { name: string; value: string }[] = [];
  let body: Buffer = Buffer.alloc(0);
  if (options.message !== undefined) {
    let raw: Buffer;
    try {
      raw = await readFile(options.message);
    } catch (error) {
      process.stderr.write(
        `filterctl: cannot read --message ${options.message}: ${(error as NodeJS.ErrnoException).code ?? error}\n`,
      );
      return EXIT_USAGE;
    }
    ({ headers, body } = parseMessage(raw));
  }
  try {
    headers = [...headers, ...(options.header ?? []).map(parseHeaderOption)];
  } catch (error) {
    process.stderr.write(`filterctl: ${(error as Error).message}\n`);
    return EXIT_USAGE;
  }

  const opened = await openRules(options.config);
  if (opened.kind !== "opened") return reportOpenFailure(opened);
  const sources = opened.registry;
  const state = await lookOnly(opened);
  if (state === undefined) return EXIT_INVALID;
  // DNSBLs are off until their first probe round: run it now, so the dry-run sees them as serve would.
  await sources.probeDnsbls();
  const input: DryRunInput = {
    clientIp: options.clientIp,
    from: options.from,
    mailArgs: options.size === undefined ? [] : [`SIZE=${options.size}`],
    rcpts: options.rcpt,
    headers,
    body,
  };
  if (options.clientName !== undefined) input.clientName = options.clientName;
  if (options.helo !== undefined) input.helo = options.helo;
  if (options.auth !== undefined) {
    input.authUser = options.auth;
    input.macros = { "{auth_authen}": options.auth };
  }
  try {
    const report = await dryRun(opened.ruleset, sources, input);
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
  } finally {
    await sources.close();
    await closeState(state, STDERR_LOGGER);
  }
  return EXIT_OK;
}

/** The state's warnings (Redis down) on stderr; the report is on stdout. */
const STDERR_LOGGER: StateLogger = {
  warn: (_fields, message) => process.stderr.write(`filterctl: ${message}\n`),
  info: () => {},
};

/**
 * The state store, bound to look only: rate() answers the count it would be and greylist() its
 * answer, and nothing is counted or recorded (a dry run never changes the state). Undefined after
 * saying why it cannot be opened (the sources are closed).
 */
export async function lookOnly(opened: OpenedRules): Promise<OpenState | undefined> {
  try {
    const state = openState(opened.config.state, STDERR_LOGGER);
    opened.registry.state = stateLookups(state.store, opened.config.greylist, { record: false });
    return state;
  } catch (error) {
    process.stderr.write(
      `filterctl: cannot open the ${opened.config.state.type} state: ${(error as Error).message}\n`,
    );
    await opened.registry.close();
    return undefined;
  }
}

const STAGE_WIDTH = 8;

function stageTitle(stage: StageReport): string {
  // A folded header keeps its line breaks (rules see them); shown escaped, on one line.
  const detail = (stage.rcpt ?? stage.header ?? stage.detail ?? "")
    .replace(/\r/g, "\\r")
    .replace(/\n/g, "\\n");
  return `${stage.stage.padEnd(STAGE_WIDTH)}${detail}`.trimEnd();
}

function verdictLine(decision: string, reply: string | null, rule?: string): string {
  const by = rule ? ` (rule ${rule})` : "";
  return reply ? `${decision} ${reply}${by}` : `${decision}${by}`;
}

export function renderReport(report: DryRunReport): string {
  const lines: string[] = [];
  for (const stage of report.stages) {
    lines.push(stageTitle(stage));
    for (const rule of stage.rules) {
      const lookups = stage.lookups.filter((l) => l.rule === rule.rule);
      const tag = rule.shadow ? " [shadow]" : "";
      const outcome = rule.decision ? verdictLine(rule.decision.action, null) : "no decision";
      lines.push(`  rule ${rule.rule}${tag}: ${outcome}`);
      for (const l of lookups) {
        const result = l.error ? `error: ${l.error}` : l.result;
        lines.push(`    lookup ${l.what} ${JSON.stringify(l.key)} -> ${result} (${l.ms.toFixed(1)} ms)`);
      }
      for (const e of rule.errors) lines.push(`    lookup failed on ${e.source}: ${e.message}`);
      for (const effect of rule.effects) {
        lines.push(
          effect.kind === "log"
            ? `    log: ${effect.text}`
            : `    add header: ${effect.name}: ${effect.value}`,
        );
      }
    }
    for (const s of stage.shadow) lines.push(`  shadow ${s.rule} would ${verdictLine(s.decision, s.reply)}`);
    lines.push(`  => ${verdictLine(stage.decision, stage.reply, stage.rule)}`);
  }
  lines.push("");
  lines.push("recipients:");
  const width = Math.max(...report.recipients.map((r) => r.rcpt.length), 4);
  for (const r of report.recipients)
    lines.push(`  ${r.rcpt.padEnd(width)}  ${verdictLine(r.decision, r.reply, r.rule)}`);
  for (const h of report.headersAdded) lines.push(`header added: ${h.name}: ${h.value} (rule ${h.rule})`);
  if (report.headersDropped !== undefined)
    lines.push(
      `headers dropped: ${report.headersDropped.count} more (rule ${report.headersDropped.rules.join(", ")}): at most ${report.headersAdded.length} are added to one message`,
    );
  if (report.quarantine !== undefined) lines.push(`quarantined: ${report.quarantine}`);
  lines.push(`result: ${verdictLine(report.result.decision, report.result.reply)}`);
  return `${lines.join("\n")}\n`;
}
