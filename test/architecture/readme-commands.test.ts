/**
 * The README's terminal sessions are run and their output compared, so the README cannot drift.
 *
 * The convention (also written at the top of README.md's first session):
 * - a ```console block is a session: `$ COMMAND` lines (a line ending in `\` continues), each
 *   followed by what it prints (stdout and stderr, as a terminal shows them); a `…` line stands
 *   for any lines; `$ cat FILE` followed by text writes that text to FILE first (it shows a file);
 * - a ```sh block is commands without their output: each line (not a comment) is run and must
 *   exit 0;
 * - `<!-- readme-file: NAME -->` just before a ```yaml block writes that block to NAME for the
 *   sessions after it;
 * - `<!-- readme-test: skip REASON -->` just before a block leaves it out, with its reason
 *   (sessions that start a server, or need one); any other block holding `$ ` lines is an error.
 * Sessions run in a temporary directory holding `examples` (the repository's), with `filterctl`
 * and `npx filterctl` running this checkout's bin/filterctl.js. Timings (`22.6 ms`) are compared
 * as `N ms`, and a public DNSBL's answer not at all (see normalise).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;
const BIN = join(ROOT, "bin", "filterctl.js");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

interface Block {
  line: number;
  lang: string;
  text: string;
  marker?: { kind: "file" | "skip"; value: string };
}

function blocks(text: string): Block[] {
  const lines = text.split("\n");
  const found: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i] as string);
    if (open === null) continue;
    const start = i;
    let end = i + 1;
    while (end < lines.length && lines[end] !== "```") end++;
    const block: Block = {
      line: start + 1,
      lang: open[1] as string,
      text: lines.slice(start + 1, end).join("\n"),
    };
    const before = lines[start - 1] ?? "";
    const marker = /^<!-- readme-(file|test): (?:skip )?(.+?) -->$/.exec(before);
    if (marker !== null)
      block.marker = { kind: marker[1] === "file" ? "file" : "skip", value: marker[2] as string };
    found.push(block);
    i = end;
  }
  return found;
}

interface Step {
  command: string;
  expected: string[];
}

/** A session's `$ ` commands (continuations joined) and the lines each shows. */
function steps(session: string): Step[] {
  const result: Step[] = [];
  const lines = session.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (!line.startsWith("$ ")) {
      result.at(-1)?.expected.push(line);
      continue;
    }
    let command = line.slice(2);
    while (command.endsWith("\\") && i + 1 < lines.length)
      command = `${command.slice(0, -1)} ${lines[++i]?.trim()}`;
    result.push({ command, expected: [] });
  }
  return result;
}

/**
 * Timings vary; so does what a public DNSBL answers (Spamhaus's `spamhaus` of the examples): the
 * README shows a machine without DNS, where the list is off; a machine with DNS gets an answer.
 */
const normalise = (text: string) =>
  text
    .replace(/\(\d+(\.\d+)? ms\)/g, "(N ms)")
    .replace(/(lookup spamhaus "[^"]*" -> ).*$/gm, "$1(a public list: depends on this machine's DNS)")
    .replace(/\s+$/gm, "");

/** Whether `actual` is `expected`, a `…` line in expected standing for any lines. */
function matches(expected: string[], actual: string[]): boolean {
  if (expected.length === 0) return actual.length === 0;
  const [head, ...rest] = expected;
  if (head === "…") return actual.some((_, i) => matches(rest, actual.slice(i))) || matches(rest, []);
  return actual.length > 0 && actual[0] === head && matches(rest, actual.slice(1));
}

const work = mkdtempSync(join(tmpdir(), "filterctl-readme-"));
const shims = join(work, ".bin");
mkdirSync(shims);
symlinkSync(join(ROOT, "examples"), join(work, "examples"));
writeFileSync(join(shims, "filterctl"), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
writeFileSync(
  join(shims, "npx"),
  `#!/bin/sh\n[ "$1" = filterctl ] && shift\nexec "${process.execPath}" "${BIN}" "$@"\n`,
);
chmodSync(join(shims, "filterctl"), 0o755);
chmodSync(join(shims, "npx"), 0o755);
afterAll(() => rmSync(work, { recursive: true, force: true }));

let lastStatus = 0;
function runStep(step: Step): string[] {
  if (step.command.startsWith("cat ") && !step.command.includes("|")) {
    writeFileSync(join(work, step.command.slice(4).trim()), `${step.expected.join("\n")}\n`);
    return step.expected;
  }
  const result = spawnSync("bash", ["-c", `(exit ${lastStatus}); ${step.command} 2>&1`], {
    cwd: work,
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, PATH: `${shims}:${process.env.PATH}`, NO_COLOR: "1" },
  });
  lastStatus = result.status ?? 1;
  return normalise(result.stdout)
    .replace(/\n$/, "")
    .split("\n")
    .filter((l, i, all) => l !== "" || i < all.length - 1 || all.length > 1);
}

const all = blocks(README);

describe("README sessions", () => {
  it("every block showing `$ ` commands is a console session or skipped with a reason", () => {
    const loose = all.filter(
      (b) => b.lang !== "console" && /^\$ /m.test(b.text) && b.marker?.kind !== "skip",
    );
    expect(loose.map((b) => `README.md:${b.line}`)).toEqual([]);
  });

  it("a block left out says why, in words (a live server, the user's own files…)", () => {
    const unexplained = all.filter(
      (b) => b.marker?.kind === "skip" && (b.marker.value ?? "").trim().length < 10,
    );
    expect(unexplained.map((b) => `README.md:${b.line}`)).toEqual([]);
    // Few, and each on purpose: a new one is a decision, not a way to quiet a drifting example.
    expect(all.filter((b) => b.marker?.kind === "skip").length).toBeLessThanOrEqual(6);
  });

  for (const block of all) {
    if (block.marker?.kind === "file") {
      it(`README.md:${block.line} writes ${block.marker.value}`, () => {
        writeFileSync(join(work, block.marker?.value as string), `${block.text}\n`);
      });
      continue;
    }
    if (block.lang !== "console" && block.lang !== "sh") continue;
    if (block.marker?.kind === "skip") continue;
    if (block.lang === "sh") {
      it(`README.md:${block.line} runs`, () => {
        for (const command of block.text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"))) {
          const output = runStep({ command, expected: [] });
          expect(lastStatus, `${command}\n${output.join("\n")}`).toBe(0);
        }
      }, 180_000);
      continue;
    }
    it(`README.md:${block.line} prints what it shows`, () => {
      for (const step of steps(block.text)) {
        const actual = runStep(step);
        const expected = normalise(step.expected.join("\n")).split("\n");
        if (!matches(expected, actual))
          expect(actual.join("\n"), `$ ${step.command}`).toBe(expected.join("\n"));
      }
    }, 180_000);
  }
});
