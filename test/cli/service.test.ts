import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { RulesRuntime } from "../../src/cli/service.js";

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
