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

/**
 * A strict logfmt reader: the whole line is `key[=value]` pairs separated by spaces, keys and
 * bare values without space, `=`, `"` or a control character, quoted values with only the
 * escapes `\"` `\\` `\n` `\r` `\t` `\xHH` `\uHHHH`; anything else throws. Returns the pairs in order
 * (a key without value is null).
 */
function readLogfmtStrict(line: string): [string, string | null][] {
  if (!line.endsWith("\n") || line.slice(0, -1).includes("\n")) throw new Error("not one line");
  const text = line.slice(0, -1);
  const token = String.raw`[^\s="\x00-\x1f\x7f-\x9f\u2028\u2029]+`;
  const quoted = String.raw`"(?:[^"\\\x00-\x1f\x7f-\x9f\u2028\u2029]|\\["\\nrt]|\\x[0-9a-f]{2}|\\u[0-9a-f]{4})*"`;
  const pair = new RegExp(`(${token})(?:=(${quoted}|(?!")${token}))?(?: +|$)`, "y");
  const pairs: [string, string | null][] = [];
  while (pair.lastIndex < text.length) {
    const at = pair.lastIndex;
    const m = pair.exec(text);
    if (m === null || m.index !== at) throw new Error(`not logfmt at ${at}: ${text.slice(at)}`);
    const value = m[2];
    pairs.push([
      m[1] as string,
      value === undefined ? null : value.startsWith('"') ? unescapeLogfmt(value.slice(1, -1)) : value,
    ]);
    if (pair.lastIndex === at) throw new Error("no progress");
  }
  const keys = pairs.map(([key]) => key);
  if (new Set(keys).size !== keys.length) throw new Error(`a key twice: ${keys.join(" ")}`);
  return pairs;
}

describe("prettyLine", () => {
  it("starts with an ISO date-time and the level", () => {
    expect(prettyLine(record({ conn: 3 }))).toBe("2025-05-01T12:00:00.007Z INFO  msg=decision conn=3\n");
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

  it("writes the message as msg=, quoted as values are when it holds a space, =, a quote or a control", () => {
    expect(prettyLine(JSON.stringify({ level: 40, time: 0, msg: "sender a\r\nb=c" }))).toBe(
      '1970-01-01T00:00:00.000Z WARN  msg="sender a\\r\\nb=c"\n',
    );
    expect(prettyLine(JSON.stringify({ level: 40, time: 0, msg: "milter listening" }))).toBe(
      '1970-01-01T00:00:00.000Z WARN  msg="milter listening"\n',
    );
    expect(prettyLine(JSON.stringify({ level: 30, time: 0, msg: "reloaded" }))).toBe(
      "1970-01-01T00:00:00.000Z INFO  msg=reloaded\n",
    );
  });

  it("writes lines a strict logfmt reader reads back whole: the date-time, the level, msg and each field", () => {
    const messages = [
      "decision",
      "'listen' changed to inet:127.0.0.1:8891: it takes a restart; still running with inet:127.0.0.1:8890",
      'rule "a=b" said x=y',
      "two\nlines\x1b[31m and \\ a backslash",
      "",
    ];
    for (const msg of messages) {
      const line = prettyLine(
        JSON.stringify({ level: 40, time: 0, msg, from: 'x" rule=allow', n: 2, ok: true, list: [1, "a b"] }),
      );
      expect(readLogfmtStrict(line)).toEqual([
        ["1970-01-01T00:00:00.000Z", null],
        ["WARN", null],
        ["msg", msg],
        ["from", 'x" rule=allow'],
        ["n", "2"],
        ["ok", "true"],
        ["list", '[1,"a b"]'],
      ]);
    }
    expect(readLogfmtStrict(prettyLine("not json\r\nsecond\n")).slice(2)).toEqual([
      ["msg", "not json\r\nsecond"],
    ]);
    expect(() => readLogfmtStrict('2025 INFO  a message with "quotes"\n')).toThrow();
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
