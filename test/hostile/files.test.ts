/**
 * Files a configuration names, against the real `filterctl serve`: a list file swapped for a
 * FIFO or a device is refused by the reload at once (it used to hang the reload forever, block
 * every later one, and keep SIGTERM from ever exiting; /dev/zero used to be read until memory ran
 * out), the rules served stay, later reloads work, and SIGTERM exits within shutdown_timeout + 5 s.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { type LogLine, ServeProcess } from "../support/serve-process.js";

const SHUTDOWN_TIMEOUT_MS = 1000;

let serve: ServeProcess | undefined;
afterEach(async () => {
  await serve?.stop(2000);
  serve = undefined;
});

/** A folder with rules.yaml rejecting the clients listed in list.txt. */
function setup(listed: string): { dir: string; config: string; list: string } {
  const dir = mkdtempSync(join(tmpdir(), "filterctl-hostile-files-"));
  const config = join(dir, "rules.yaml");
  const list = join(dir, "list.txt");
  writeFileSync(list, `${listed}\n`);
  writeFileSync(
    config,
    [
      `shutdown_timeout: ${SHUTDOWN_TIMEOUT_MS}ms`,
      "sources:",
      "  blocked:",
      "    type: list",
      "    file: list.txt",
      "rules:",
      '  - on connect: if client.ip in blocked then reject 554 5.7.1 "listed"',
      "",
    ].join("\n"),
  );
  return { dir, config, list };
}

/** What the milter answers at connect for a client at `ip`. */
async function verdict(server: ServeProcess, ip: string): Promise<string> {
  const client = await MilterClient.connect(server.listen, 5000);
  try {
    await client.negotiate();
    const reply = await client.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: ip });
    return reply?.type === "replycode" ? reply.text : String(reply?.type);
  } finally {
    client.quit();
  }
}

function rssMiB(pid: number): number {
  const line = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(line?.[1]) / 1024;
}

const isReloadError = (line: LogLine) => line.level === 50 && String(line.msg).includes("list file");

describe("filterctl serve: a list file that is not a regular file", () => {
  it("a FIFO: the reload is refused at once at the YAML key; old rules serve; the next edit is taken", async () => {
    const { dir, config, list } = setup("192.0.2.1");
    serve = await ServeProcess.start({ config });
    expect(await verdict(serve, "192.0.2.1")).toBe("554 5.7.1 listed");

    rmSync(list);
    execFileSync("mkfifo", [list]);
    const sent = Date.now();
    serve.signal("SIGHUP");
    const error = await serve.waitForLine(isReloadError, 10_000);
    expect(Date.now() - sent).toBeLessThan(10_000);
    expect(error).toMatchObject({
      file: config,
      line: 5,
      column: 11,
      msg: `${config}:5:11: error: source 'blocked': list file ${list}: is a FIFO, not a regular file (a list file must be a regular file of at most 16 MiB)`,
    });
    await serve.waitForLine((l) => String(l.msg).startsWith("reload refused, still serving generation 1"));
    expect(await verdict(serve, "192.0.2.1")).toBe("554 5.7.1 listed");

    // Missing: serve is about to read it, so that is an error at the same place too.
    rmSync(list);
    serve.signal("SIGHUP");
    const missing = await serve.waitForLine(
      (l) => isReloadError(l) && String(l.msg).endsWith("no such file"),
    );
    expect(missing).toMatchObject({
      line: 5,
      column: 11,
      msg: `${config}:5:11: error: source 'blocked': list file ${list}: no such file`,
    });

    // A later valid edit is applied: the refused reloads blocked nothing.
    writeFileSync(list, "192.0.2.2\n");
    serve.signal("SIGHUP");
    await serve.waitForLine((l) => l.msg === "reloaded: serving generation 2", 10_000);
    expect(await verdict(serve, "192.0.2.2")).toBe("554 5.7.1 listed");
    expect(await verdict(serve, "192.0.2.1")).toBe("continue");
    rmSync(dir, { recursive: true, force: true });
  });

  it("/dev/zero: refused without reading it; memory stays small", async () => {
    const { dir, config, list } = setup("192.0.2.1");
    serve = await ServeProcess.start({ config });
    rmSync(list);
    symlinkSync("/dev/zero", list);
    serve.signal("SIGHUP");
    const error = await serve.waitForLine(isReloadError, 10_000);
    expect(error.msg).toBe(
      `${config}:5:11: error: source 'blocked': list file ${list}: is a character device, not a regular file (a list file must be a regular file of at most 16 MiB)`,
    );
    expect(rssMiB(serve.pid)).toBeLessThan(200);
    expect(await verdict(serve, "192.0.2.1")).toBe("554 5.7.1 listed");
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("filterctl serve: SIGTERM", () => {
  it("exits 0 within shutdown_timeout + 5 s with a FIFO reload sent and a peer holding a session", async () => {
    const { dir, config, list } = setup("192.0.2.1");
    serve = await ServeProcess.start({ config });
    // A peer that negotiates, passes connect, and then says nothing more.
    const peer = await MilterClient.connect(serve.listen, 5000);
    await peer.negotiate();
    expect(await peer.connectInfo({ hostname: "c", family: "inet", port: 1, address: "192.0.2.9" })).toEqual({
      type: "continue",
    });
    rmSync(list);
    execFileSync("mkfifo", [list]);
    serve.signal("SIGHUP");
    await new Promise((resolve) => setTimeout(resolve, 500));

    const sent = Date.now();
    serve.signal("SIGTERM");
    const status = await serve.waitForExit(SHUTDOWN_TIMEOUT_MS + 5000);
    const took = Date.now() - sent;
    expect(status, serve.tail()).toEqual({ code: 0, signal: null });
    expect(took).toBeLessThan(SHUTDOWN_TIMEOUT_MS + 5000);
    // The held session was waited for, then cut.
    expect(took).toBeGreaterThanOrEqual(SHUTDOWN_TIMEOUT_MS - 100);
    expect(serve.find((l) => l.msg === "stopped")).toMatchObject({ cut: 1 });
    peer.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
});
