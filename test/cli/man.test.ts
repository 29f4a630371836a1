/**
 * filterctl(1): rendered from the program behind `--help`, committed as man/filterctl.1 (run
 * `npm run man` after changing a command or an option), shipped by package.json's `man`.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { roffText } from "../../src/cli/man.js";
import { runCli } from "./run.js";

const PAGE = new URL("../../man/filterctl.1", import.meta.url);
const committed = () => readFileSync(PAGE, "utf8");

describe("filterctl(1)", () => {
  it("man/filterctl.1 is what the program renders now", () => {
    const rendered = runCli(["man"]);
    expect(rendered.status).toBe(0);
    expect(committed(), "man/filterctl.1 is out of date: run `npm run man`").toBe(rendered.stdout);
  });

  it("has every command and option --help lists, with --help's description", () => {
    const page = committed();
    const top = runCli(["--help"]).stdout;
    const commands = [...top.matchAll(/^ {2}([a-z-]+) /gm)]
      .map((m) => m[1] as string)
      .filter((name) => name !== "help");
    expect(commands).toContain("serve");
    for (const command of commands) {
      expect(page).toContain(`.SS ${roffText(command)}\n`);
      const help = runCli([command, "--help"]).stdout;
      for (const flag of help.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)) {
        expect(page, `${command} ${flag[1]}`).toContain(roffText(flag[1] as string));
      }
    }
    expect(page).toContain(roffText("print the report as JSON"));
    expect(page).not.toMatch(/^\.SS man$/m);
  });

  it("is declared in package.json's man field and files", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      man: string[];
      files: string[];
    };
    expect(pkg.man).toEqual(["./man/filterctl.1"]);
    expect(pkg.files).toContain("man");
  });

  it("renders with man(1) without a roff warning", () => {
    const result = spawnSync("man", ["--warnings=all", "-l", PAGE.pathname], {
      encoding: "utf8",
      env: { ...process.env, MANWIDTH: "100", MAN_KEEP_FORMATTING: "" },
    });
    if (result.error !== undefined) return; // no man(1) on this machine: the text checks above stand
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^ {7}--max-connections <n>$/m);
  });
});

describe("roffText", () => {
  it("escapes backslashes and hyphens, and keeps a line from reading as a request", () => {
    expect(roffText("a\\b --x")).toBe("a\\eb \\-\\-x");
    expect(roffText(".TH\n'x")).toBe("\\&.TH\n\\&'x");
  });
});
