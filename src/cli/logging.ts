/**
 * Logs are JSON lines on stdout (one object per line, for log shippers), or a short human
 * format with `--log-format pretty`: `2025-05-01T12:00:00.000Z INFO  msg="a message" key=value ...`,
 * where every value an SMTP peer may have chosen is escaped, so no byte it sends can start a
 * line, move the cursor or recolour a terminal, and the whole line reads back as logfmt (the
 * date-time and the level are its first two keys, without values).
 */
import { Writable } from "node:stream";
import { type Logger, pino } from "pino";

export type LogFormat = "json" | "pretty";

const LEVEL_NAMES: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};
const HIDDEN_KEYS = new Set(["level", "time", "msg", "pid", "hostname"]);

/**
 * Characters never written as they are: C0 controls (CR, LF, ESC...), DEL, C1 controls, the
 * Unicode line and paragraph separators (some viewers break lines there) and the bidirectional
 * overrides (which make a line read differently from what it holds).
 */
const UNSAFE_CLASS =
  "\\u0000-\\u001f\\u007f-\\u009f\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069";
const UNSAFE = new RegExp(`[${UNSAFE_CLASS}]`, "g");
/** A value with any of these is quoted (logfmt: a space, quote or = would end or fake a field). */
const NEEDS_QUOTES = new RegExp(`[\\s"=\\\\${UNSAFE_CLASS}]`);

function escapeChar(char: string): string {
  if (char === "\n") return "\\n";
  if (char === "\r") return "\\r";
  if (char === "\t") return "\\t";
  const code = char.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

function quote(text: string): string {
  return `"${text.replace(/["\\]/g, "\\$&").replace(UNSAFE, escapeChar)}"`;
}

/** A logfmt value: as it is when that is unambiguous, else quoted with `\"`, `\\`, `\n`, `\x1b`... */
export function logfmtValue(text: string): string {
  return text !== "" && !NEEDS_QUOTES.test(text) ? text : quote(text);
}

/** Keys are ours, not a peer's; still, nothing but a key's usual characters gets through. */
function logfmtKey(key: string): string {
  return key === "" ? "_" : key.replace(/[^\w.@/:-]/g, "_");
}

function fieldText(value: unknown): string {
  if (typeof value === "string") return logfmtValue(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return logfmtValue(JSON.stringify(value) ?? String(value));
}

/** Renders one pino JSON line as `ISO-TIME LEVEL msg=... key=value ...`, on one line whatever it holds. */
export function prettyLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `${new Date().toISOString()} ?     msg=${quote(json.trimEnd())}\n`;
  }
  const time = new Date(typeof record.time === "number" ? record.time : Date.now()).toISOString();
  const level = LEVEL_NAMES[Number(record.level)] ?? logfmtKey(String(record.level));
  const message = `msg=${logfmtValue(String(record.msg ?? ""))}`;
  const fields = Object.entries(record)
    .filter(([key]) => !HIDDEN_KEYS.has(key))
    .map(([key, value]) => `${logfmtKey(key)}=${fieldText(value)}`)
    .join(" ");
  return `${time} ${level.padEnd(5)} ${message}${fields ? ` ${fields}` : ""}\n`;
}

/**
 * Log lines are gathered for up to a quarter of a second (or 4 KiB) and written together: one
 * write per line cost a thread-pool trip each, several per cent of a busy milter's CPU. Lines
 * still pending are written when the process stops (shutdown and the fatal-error path flush).
 */
const JSON_DESTINATION = { dest: 1, sync: false, minLength: 4096, periodicFlush: 250 } as const;

export function createLogger(format: LogFormat, level = process.env.FILTERCTL_LOG_LEVEL ?? "info"): Logger {
  const options = { level, base: undefined, timestamp: pino.stdTimeFunctions.epochTime };
  if (format === "json") return pino(options, pino.destination(JSON_DESTINATION));
  const pretty = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const lines = chunk
        .toString("utf8")
        .split("\n")
        .filter((line) => line !== "");
      process.stdout.write(lines.map(prettyLine).join(""), () => done());
    },
  });
  return pino(options, pretty);
}
