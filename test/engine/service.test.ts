import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { RulesRuntime } from "../../src/engine/service.js";
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
