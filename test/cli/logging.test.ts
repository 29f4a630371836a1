/**
 * `--log-format pretty`: one line per record whatever the values hold (a peer chooses MAIL FROM,
 * HELO, header values), an ISO timestamp, and values that read back as logfmt.
 */
import { describe, expect, it } from "vitest";
import { logfmtValue, prettyLine } from "../../src/cli/logging.js";

const record = (fields: Record<string, unknown>) =>
  JSON.stringify({ level: 30, time: Date.UTC(2025, 4, 1, 12, 0, 0, 7), msg: "decision", ...fields });

/** Whether a character that must never reach the terminal as it is is there. */
function hasRawControl(text: string): boolean {
  return [...text].some((char) => {
    const code = char.codePointAt(0) as number;
    return code < 0x20 || (code >= 0x7f && code <= 0x9f) || [0x2028, 0x2029, 0x202e].includes(code);
  });
}

const UNESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t" };

function unescapeLogfmt(text: string): string {
  return text.replace(/\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)/g, (_, e: string) =>
    e.length > 1 ? String.fromCharCode(Number.parseInt(e.slice(1), 16)) : (UNESCAPES[e] ?? e),
  );
}

/** Reads logfmt key=value pairs back (the subset prettyLine writes: bare or double-quoted). */
function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of text.matchAll(/([\w.@/:-]+)=("((?:[^"\\]|\\.)*)"|[^\s"]*)/g)) {
    const key = m[1] as string;
    fields[key] = m[3] === undefined ? (m[2] as string) : unescapeLogfmt(m[3] as string);
  }
  return fields;
}

describe("prettyLine", () => {
  it("starts with an ISO date-time and the level", () => {
    expect(prettyLine(record({ conn: 3 }))).toBe("2025-05-01T12:00:00.007Z INFO  decision conn=3\n");
  });

  it("escapes CR, LF, ESC, other C0 and C1 controls, DEL, line separators and bidi overrides", () => {
    const from = "a\r\nb\x1b[31mc\x00d\x7fe\x85f\u2028g\u202eh\ti";
    const line = prettyLine(record({ from }));
    expect(line.endsWith("\n")).toBe(true);
    expect(hasRawControl(line.slice(0, -1))).toBe(false);
    expect(line).toContain('from="a\\r\\nb\\x1b[31mc\\x00d\\x7fe\\x85f\\u2028g\\u202eh\\ti"');
  });

  it("quotes values with spaces, quotes, = or backslashes, and leaves plain ones bare", () => {
    const line = prettyLine(
      record({
        plain: "alice@example.org",
        spaced: "a b",
        quoted: 'say "hi"',
        eq: "k=v",
        slash: "a\\b",
        empty: "",
      }),
    );
    expect(line).toContain(
      'plain=alice@example.org spaced="a b" quoted="say \\"hi\\"" eq="k=v" slash="a\\\\b" empty=""',
    );
    const back = parseFields(line);
    expect(back).toMatchObject({ spaced: "a b", quoted: 'say "hi"', eq: "k=v", slash: "a\\b", empty: "" });
  });

  it("cannot be made to show a forged field or line", () => {
    const forged = 'x" rule=allow-all decision=accept\n2025-05-01T12:00:00.000Z INFO  decision';
    const line = prettyLine(record({ from: forged, rule: "reject-forged" }));
    expect(line.split("\n")).toHaveLength(2);
    expect(parseFields(line)).toMatchObject({ from: forged, rule: "reject-forged" });
  });

  it("renders numbers, booleans and null bare, objects as quoted JSON", () => {
    const line = prettyLine(record({ n: 1.5, ok: false, none: null, lookups: [{ key: "a b" }] }));
    expect(line).toContain('n=1.5 ok=false none=null lookups="[{\\"key\\":\\"a b\\"}]"');
  });

  it("quotes a message that holds = or a control character, and keeps a plain one readable", () => {
    expect(prettyLine(JSON.stringify({ level: 40, time: 0, msg: "sender a\r\nb=c" }))).toBe(
      '1970-01-01T00:00:00.000Z WARN  "sender a\\r\\nb=c"\n',
    );
    expect(prettyLine(JSON.stringify({ level: 40, time: 0, msg: "milter listening" }))).toBe(
      "1970-01-01T00:00:00.000Z WARN  milter listening\n",
    );
  });

  it("keeps a line that is not JSON on one line", () => {
    const line = prettyLine("not json\r\nsecond\n");
    expect(line.split("\n")).toHaveLength(2);
    expect(line).toContain('"not json\\r\\nsecond"');
  });
});

describe("logfmtValue", () => {
  it("escapes only what needs it", () => {
    expect(logfmtValue("abc")).toBe("abc");
    expect(logfmtValue("\u00e9t\u00e9")).toBe("\u00e9t\u00e9");
    expect(logfmtValue("\u009b2J")).toBe('"\\x9b2J"');
  });
});
