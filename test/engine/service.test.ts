import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { BACKUP_DEADLINE_MARGIN_MS, rulesHandler } from "../../src/engine/milter-handler.js";
import { RulesRuntime, type RuntimeOptions } from "../../src/engine/service.js";
import type { SessionContext } from "../../src/milter/index.js";
import type { HttpSourceConfig } from "../../src/sources/http.js";
import type { SourceFactories } from "../../src/sources/registry.js";
import type { QuotaSource } from "../../src/sources/types.js";

const rules = (text: string) => `
sources:
  allow:
    type: list
    items: ["192.0.2.0/24"]
rules:
  - on connect: if client.ip in allow then accept else reject 554 5.7.1 "${text}"
`;

describe("RulesRuntime", () => {
  it("closes replaced sources when the last connection using them lets go, not before", async () => {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-runtime-"));
    const path = join(dir, "rules.yaml");
    writeFileSync(path, rules("first"));
    const runtime = await RulesRuntime.start(path, pino({ level: "silent" }));
    const first = runtime.current();
    const closeFirst = vi.spyOn(first.lookups, "close");
    runtime.retain(first); // a connection on the first rules

    writeFileSync(path, rules("second"));
    expect(await runtime.reload("test")).toBe(true);
    expect(runtime.generation).toBe(2);
    expect(closeFirst).not.toHaveBeenCalled();

    runtime.release(first); // that connection closes
    expect(closeFirst).toHaveBeenCalledTimes(1);
    runtime.release(first); // a second release changes nothing
    expect(closeFirst).toHaveBeenCalledTimes(1);

    // Rules nobody holds are closed as soon as a reload replaces them.
    const second = runtime.current();
    const closeSecond = vi.spyOn(second.lookups, "close");
    writeFileSync(path, rules("third"));
    expect(await runtime.reload("test")).toBe(true);
    expect(closeSecond).toHaveBeenCalledTimes(1);

    // An invalid file changes nothing and closes nothing.
    const third = runtime.current();
    const closeThird = vi.spyOn(third.lookups, "close");
    writeFileSync(path, "rules:\n  - on connect: rejct\n");
    expect(await runtime.reload("test")).toBe(false);
    expect(runtime.current()).toBe(third);
    expect(closeThird).not.toHaveBeenCalled();
    await runtime.close();
  });
});

describe("watching the files", () => {
  it("a runtime told to reload but not to watch (a --workers worker) does not start watching when it reloads", async () => {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-watch-"));
    const path = join(dir, "rules.yaml");
    writeFileSync(path, rules("first"));
    const runtime = await RulesRuntime.start(path, pino({ level: "silent" }));
    writeFileSync(path, rules("second"));
    expect(await runtime.reload("told")).toBe(true);
    // An edit after that reload: only the primary may act on it.
    writeFileSync(path, rules("third"));
    await new Promise((r) => setTimeout(r, 700));
    expect(runtime.generation).toBe(2);
    // One that watches reloads on its own, and goes on watching after each reload.
    runtime.watchFiles();
    writeFileSync(path, rules("fourth"));
    await vi.waitFor(() => expect(runtime.generation).toBe(3), { timeout: 3000 });
    writeFileSync(path, rules("fifth"));
    await vi.waitFor(() => expect(runtime.generation).toBe(4), { timeout: 3000 });
    await runtime.close();
  });
});

describe("the reload deadline", () => {
  /** http sources whose creation hangs while their url says "hang", until `release()`. */
  function sources() {
    const created: { url: string; closed: boolean }[] = [];
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const factories: SourceFactories = {
      http: async (config) => {
        const url = (config as HttpSourceConfig).url;
        if (url.includes("hang")) await released;
        const record = { url, closed: false };
        created.push(record);
        const source: QuotaSource = {
          kind: "quota",
          quota: async () => undefined,
          close: async () => {
            record.closed = true;
          },
        };
        return source;
      },
    };
    return { created, factories, release: () => release() };
  }

  const config = (slowUrl: string) => `
sources:
  kept:
    type: http
    url: "http://127.0.0.1:1/kept?u={user}"
  changed:
    type: http
    url: "${slowUrl}"
rules:
  - on rcpt: if quota(rcpt, kept) over or quota(rcpt, changed) over then reject
`;

  it("gives up a reload stuck past the deadline, keeps serving, and takes the next one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-deadline-"));
    const path = join(dir, "rules.yaml");
    writeFileSync(path, config("http://127.0.0.1:1/a?u={user}"));
    const lines: { msg: string; level: number }[] = [];
    const logger = pino(
      { level: "info" },
      { write: (line: string) => lines.push(JSON.parse(line) as { msg: string; level: number }) },
    );
    const { created, factories, release } = sources();
    const runtime = await RulesRuntime.start(path, logger, { factories, reloadDeadlineMs: 300 });
    const first = runtime.current();

    writeFileSync(path, config("http://127.0.0.1:1/hang?u={user}"));
    const started = Date.now();
    expect(await runtime.reload("test")).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(runtime.current()).toBe(first);
    expect(runtime.reloadInFlight).toBe(false);
    expect(lines.find((l) => l.msg.startsWith("reload given up"))).toMatchObject({
      level: 50,
      msg: "reload given up: not done within 0.3 s, still serving generation 1; the next change or SIGHUP reloads again",
    });

    // The stuck reload does not block the next one.
    writeFileSync(path, config("http://127.0.0.1:1/b?u={user}"));
    expect(await runtime.reload("test")).toBe(true);
    expect(runtime.generation).toBe(2);

    // The stuck one finishes late: what it opened is closed, what it shared with the rules served is not.
    release();
    await vi.waitFor(() =>
      expect(lines.some((l) => l.msg.startsWith("a reload given up earlier has finished"))).toBe(true),
    );
    expect(runtime.generation).toBe(2);
    const byUrl = (part: string) => created.filter((c) => c.url.includes(part));
    expect(byUrl("/kept").map((c) => c.closed)).toEqual([false]); // created once, still served
    expect(byUrl("/hang").map((c) => c.closed)).toEqual([true]);
    expect(byUrl("/a").map((c) => c.closed)).toEqual([true]); // replaced by generation 2
    expect(byUrl("/b").map((c) => c.closed)).toEqual([false]);
    await runtime.close();
    expect(created.every((c) => c.closed)).toBe(true);
  });
});

describe("reload or restart", () => {
  const file = (settings: string) => `${settings}
rules:
  - on rcpt: if rcpt.local == "nobody" then reject 550 5.1.1 "no such user"
`;
  const START = `listen: "inet:127.0.0.1:8890"
listen_mode: "0660"
max_connections: 10
max_buffered_input: 8MiB
event_timeout: 300ms
defaults:
  error_reply: "451 4.3.0 first reply"`;
  const CHANGED = `listen: "inet:127.0.0.1:8891"
listen_mode: "0600"
max_connections: 20
max_buffered_input: 16MiB
event_timeout: 1s
defaults:
  error_reply: "451 4.3.0 second reply"`;
  const session: SessionContext = {
    id: 1,
    peer: "test",
    negotiated: { version: 6, actions: 0, protocol: 0 },
    macro: () => undefined,
    macrosOf: () => ({}),
  };

  async function started(text: string, options: RuntimeOptions = {}) {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-restart-"));
    const path = join(dir, "rules.yaml");
    writeFileSync(path, file(text));
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const runtime = await RulesRuntime.start(path, logger, options);
    const reload = async (next: string) => {
      lines.length = 0;
      writeFileSync(path, file(next));
      expect(await runtime.reload("test")).toBe(true);
    };
    const warnings = () => lines.filter((l) => l.level === 40).map((l) => l.setting);
    return { runtime, reload, warnings, lines };
  }

  it("applies event_timeout and error_reply to the transactions that start after a reload", async () => {
    const { runtime, reload } = await started(START);
    const handler = rulesHandler(runtime)({ id: 1 });
    await handler.connect?.({ hostname: "c", family: "inet", port: 1, address: "192.0.2.1" }, session);
    await handler.mail?.("<a@example.net>", [], session);
    expect(handler.handlerTimeoutMs).toBe(300 + BACKUP_DEADLINE_MARGIN_MS);
    expect(handler.fallback).toEqual({
      action: "tempfail",
      code: 451,
      enhancedCode: "4.3.0",
      text: "first reply",
    });

    await reload(CHANGED);
    expect(runtime.current().eventTimeoutMs).toBe(1000);
    expect(runtime.current().deadlineDecision?.("rcpt")).toBeUndefined(); // no source: on_error never applies
    // The transaction under way keeps its rules; the next one takes the new ones.
    expect(handler.handlerTimeoutMs).toBe(300 + BACKUP_DEADLINE_MARGIN_MS);
    await handler.mail?.("<b@example.net>", [], session);
    expect(handler.handlerTimeoutMs).toBe(1000 + BACKUP_DEADLINE_MARGIN_MS);
    expect(handler.fallback).toMatchObject({ action: "tempfail", code: 451, text: "second reply" });
    handler.close?.(session);
    await runtime.close();
  });

  it("a reload that changes listen, listen_mode, max_connections or max_buffered_input says each needs a restart", async () => {
    const { runtime, reload, warnings, lines } = await started(START);
    await reload(CHANGED);
    expect(warnings()).toEqual(["listen", "listen_mode", "max_connections", "max_buffered_input"]);
    expect(lines.find((l) => l.setting === "listen")).toMatchObject({
      running: "inet:127.0.0.1:8890",
      configured: "inet:127.0.0.1:8891",
      msg: "'listen' changed to inet:127.0.0.1:8891: it takes a restart; still running with inet:127.0.0.1:8890",
    });
    expect(lines.find((l) => l.setting === "listen_mode")).toMatchObject({
      running: "0660",
      configured: "0600",
    });
    // The running values are those serve started with: back to them, nothing to say.
    await reload(START);
    expect(warnings()).toEqual([]);
    expect(runtime.generation).toBe(3);
    await runtime.close();
  });

  it("a reload warns about a restart setting once per value, not again on each reload", async () => {
    const { runtime, reload, warnings } = await started(START);
    await reload(CHANGED);
    expect(warnings()).toEqual(["listen", "listen_mode", "max_connections", "max_buffered_input"]);
    // A rule edited, the restart settings as the last reload had them: nothing new to say.
    await reload(`${CHANGED}\n# edited`);
    expect(warnings()).toEqual([]);
    // Another value of one of them: that one is named again.
    await reload(CHANGED.replace("max_connections: 20", "max_connections: 30"));
    expect(warnings()).toEqual(["max_connections"]);
    // Back to the running values and away again: warned again.
    await reload(START);
    expect(warnings()).toEqual([]);
    await reload(CHANGED);
    expect(warnings()).toEqual(["listen", "listen_mode", "max_connections", "max_buffered_input"]);
    await runtime.close();
  });

  it("a reload that changes journal: says it takes a restart; the same journal written again says nothing", async () => {
    const journal = (path: string, keep: number) =>
      `journal:\n  path: ${path}\n  max_size: 10MB\n  keep: ${keep}`;
    const { runtime, reload, warnings, lines } = await started(`${START}\n${journal("j.jsonl", 5)}`);
    // Read again, it is another object with the same fields: not a change.
    await reload(`${START}\n${journal("j.jsonl", 5)}\n# edited`);
    expect(warnings()).toEqual([]);
    await reload(`${START}\n${journal("other.jsonl", 5)}`);
    expect(warnings()).toEqual(["journal"]);
    const line = lines.find((l) => l.setting === "journal");
    expect(line?.configured).toMatch(/other\.jsonl \(max_size 10000000 bytes, keep 5\)$/);
    expect(line?.running).toMatch(/j\.jsonl \(max_size 10000000 bytes, keep 5\)$/);
    expect(line?.msg).toMatch(
      /^'journal' changed to .*other\.jsonl .*: it takes a restart; still running with .*j\.jsonl/,
    );
    await reload(`${START}\n${journal("j.jsonl", 9)}`);
    expect(warnings()).toEqual(["journal"]);
    // Removed from the file: the journal open stays open until a restart.
    await reload(START);
    expect(lines.find((l) => l.setting === "journal")).toMatchObject({ configured: "(not set)" });
    await runtime.close();
  });

  it("serve --journal fixes the journal: the file's journal: is not reported", async () => {
    const { runtime, reload, warnings } = await started(START, { fixed: ["journal"] });
    await reload(`${START}\njournal:\n  path: j.jsonl`);
    expect(warnings()).toEqual([]);
    await runtime.close();
  });

  it("a setting the command line fixes is not reported", async () => {
    const { runtime, reload, warnings } = await started(START, { fixed: ["listen", "maxConnections"] });
    await reload(CHANGED);
    expect(warnings()).toEqual(["listen_mode", "max_buffered_input"]);
    await runtime.close();
  });
});

describe("validation warnings across reloads", () => {
  const file = (unused: string[]) => `sources:
  allow:
    type: list
    items: ["192.0.2.0/24"]
${unused.map((name) => `  ${name}:\n    type: list\n    items: ["198.51.100.0/24"]\n`).join("")}rules:
  - on connect: if client.ip in allow then accept
`;

  it("logs a warning once, and on a reload only those the served rules did not have", async () => {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-warnings-"));
    const path = join(dir, "rules.yaml");
    writeFileSync(path, file(["spare"]));
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const warned = () => lines.filter((l) => l.severity === "warning").map((l) => l.msg);
    const runtime = await RulesRuntime.start(path, logger);
    expect(warned()).toEqual([expect.stringContaining("source 'spare' is not used by any rule")]);

    const reload = async (unused: string[]) => {
      lines.length = 0;
      writeFileSync(path, file(unused));
      expect(await runtime.reload("test")).toBe(true);
    };
    await reload(["spare"]);
    expect(warned()).toEqual([]);
    // Moved by an edit above it, it is still the same warning.
    await reload(["other", "spare"]);
    expect(warned()).toEqual([expect.stringContaining("source 'other' is not used by any rule")]);
    // Gone, then back: new again compared with the generation before.
    await reload([]);
    expect(warned()).toEqual([]);
    await reload(["spare"]);
    expect(warned()).toEqual([expect.stringContaining("source 'spare' is not used by any rule")]);
    await runtime.close();
  });
});

describe("loading the rules a --workers primary validated", () => {
  const loadedText = (runtime: RulesRuntime) =>
    runtime.config.rules.map((r) => (r.form === "text" ? r.body.text : "")).join("");

  it("starts and reloads with the text given, whatever the file holds, numbered as given; a reload asked during another loads the latest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "filterctl-text-"));
    const path = join(dir, "rules.yaml");
    // The file was edited again after the primary validated it: the worker loads what was validated.
    writeFileSync(path, "rules:\n  - on connect: rejct\n");
    const log = pino({ level: "silent" });
    // A worker started again after three changes: it serves generation 4, as the others do.
    const runtime = await RulesRuntime.start(path, log, {}, { text: rules("first"), generation: 4 });
    expect(loadedText(runtime)).toContain('"first"');
    expect(runtime.generation).toBe(4);
    expect(await runtime.reload("told", { text: rules("second"), generation: 5 })).toBe(true);
    expect(runtime.generation).toBe(5);
    expect(loadedText(runtime)).toContain('"second"');
    // Diagnostics still name the file.
    expect(runtime.config.file.path).toBe(path);

    // Three reloads in a row: the first runs, the last is loaded after it; the middle one is superseded.
    const first = runtime.reload("one", { text: rules("third"), generation: 6 });
    void runtime.reload("two", { text: rules("fourth"), generation: 7 });
    void runtime.reload("three", { text: rules("fifth"), generation: 8 });
    expect(await first).toBe(true);
    await vi.waitFor(() => expect(runtime.generation).toBe(8), { timeout: 5000 });
    expect(loadedText(runtime)).toContain('"fifth"');
    // Without rules given, a reload reads the file (here invalid: refused, nothing changes).
    expect(await runtime.reload("file")).toBe(false);
    expect(loadedText(runtime)).toContain('"fifth"');
    await runtime.close();
  });
});
