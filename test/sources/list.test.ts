import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigReadError } from "../../src/config/read.js";
import type { ListSourceConfig } from "../../src/sources/list.js";
import { createListTable, ListTable } from "../../src/sources/list.js";

const dir = mkdtempSync(join(tmpdir(), "filterctl-list-"));
const source = (file: string): ListSourceConfig => ({
  name: "l",
  type: "list",
  kind: "table",
  file,
  offset: 0,
  timeoutMs: 100,
  onError: "tempfail",
});

describe("list files", () => {
  it("one key per line; comments, blank lines and CRLF ignored", async () => {
    writeFileSync(
      join(dir, "keys.txt"),
      "# ours\r\nExample.ORG\r\n\n  192.0.2.0/24  # office\nalice@Example.org",
    );
    const table = await createListTable(source("keys.txt"), join(dir, "rules.yaml"));
    expect(table.size).toBe(3);
    expect(table.find("example.org")).toBe("Example.ORG");
    expect(table.find("192.0.2.77")).toBe("192.0.2.0/24");
    expect(table.find("alice@example.org")).toBe("alice@Example.org");
    expect(table.find("# ours")).toBeUndefined();
  });

  it("a file of 200,000 lines loads (spreading them into one call overflowed the stack)", async () => {
    const lines = Array.from({ length: 200_000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    writeFileSync(join(dir, "many.txt"), lines.join("\n"));
    const table = await createListTable(source("many.txt"), join(dir, "rules.yaml"));
    expect(table.size).toBe(200_000);
    expect(table.find("10.3.13.63")).toBe("10.3.13.63");
  });

  it("a FIFO is refused at once", async () => {
    execFileSync("mkfifo", [join(dir, "fifo")]);
    const error = await createListTable(source("fifo"), join(dir, "rules.yaml")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigReadError);
    expect((error as Error).message).toBe(`${join(dir, "fifo")}: is a FIFO, not a regular file`);
  });

  it("a large list is built a slice at a time: the event loop keeps turning", async () => {
    const text = Array.from({ length: 100_000 }, (_, i) => `host${i}.example`).join("\n");
    let turns = 0;
    let building = true;
    const heartbeat = () => {
      if (!building) return;
      turns++;
      setImmediate(heartbeat);
    };
    setImmediate(heartbeat);
    const table = await ListTable.fromText(text);
    building = false;
    expect(table.size).toBe(100_000);
    // 100,000 lines are 20 slices: other work ran between them (a synchronous build lets none).
    expect(turns).toBeGreaterThanOrEqual(15);
  });

  it("stops building when its reload is given up", async () => {
    const text = Array.from({ length: 100_000 }, (_, i) => `host${i}.example`).join("\n");
    const stop = new AbortController();
    const building = ListTable.fromText(text, stop.signal);
    stop.abort();
    await expect(building).rejects.toThrow(/aborted/);
  });
});
