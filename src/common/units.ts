/**
 * Sizes and durations as a postmaster writes them: `200MB` = 200·10⁶ bytes, `200MiB` = 200·2²⁰,
 * `500ms`, `30s`, `5m`, `1h`, `1d`.
 */

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const SIZE_PATTERN = /^(\d+(?:\.\d+)?)(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/;
export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Bytes for `200MB`, or undefined when the text is not a size. Plain integers are bytes. */
export function parseSize(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const match = SIZE_PATTERN.exec(text);
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * (SIZE_UNITS[match[2] as string] as number));
}

/** Milliseconds for `30s`, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * (DURATION_UNITS[match[2] as string] as number));
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
