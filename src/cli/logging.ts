/**
 * Logs are JSON lines on stdout (one object per line, for log shippers), or a short human
 * format with `--log-format pretty`.
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

/** Renders one pino JSON line as `HH:MM:SS.mmm LEVEL message key=value ...`. */
export function prettyLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = new Date(typeof record.time === "number" ? record.time : Date.now())
    .toISOString()
    .slice(11, 23);
  const level = LEVEL_NAMES[Number(record.level)] ?? String(record.level);
  const fields = Object.entries(record)
    .filter(([key]) => !HIDDEN_KEYS.has(key))
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
  return `${time} ${level.padEnd(5)} ${String(record.msg ?? "")}${fields ? ` ${fields}` : ""}\n`;
}

export function createLogger(format: LogFormat, level = process.env.FILTERCTL_LOG_LEVEL ?? "info"): Logger {
  const options = { level, base: undefined, timestamp: pino.stdTimeFunctions.epochTime };
  if (format === "json") return pino(options, pino.destination({ dest: 1, sync: false }));
  const pretty = new Writable({
    write(chunk: Buffer, _encoding, done) {
      process.stdout.write(prettyLine(chunk.toString("utf8")), () => done());
    },
  });
  return pino(options, pretty);
}
