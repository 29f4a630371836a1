import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ListenError, MilterClient, MilterServer, reply } from "../../src/milter/index.js";
import { CLIENT, recordingLogger, startServer, waitFor } from "./helpers.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "filterctl-server-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const continueAll = () => ({ mail: () => undefined });

describe("unix sockets", () => {
  it("listens with the configured mode and serves a session", async () => {
    const path = join(dir, "milter.sock");
    const server = new MilterServer(continueAll, { socketMode: 0o600 });
    await server.listen(`unix:${path}`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const client = await MilterClient.connect(`local:${path}`);
    await client.negotiate();
    expect(await client.mail("<a@b>")).toEqual({ type: "continue" });
    client.destroy();
    await server.shutdown(1000);
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it("replaces a stale socket file left by a dead process", async () => {
    const path = join(dir, "stale.sock");
    // A process that dies without cleaning up leaves its socket file behind.
    const owner = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(path)})`,
    ]);
    await waitFor(() => existsSync(path));
    owner.kill("SIGKILL");
    await new Promise((r) => owner.once("exit", r));
    expect((await stat(path)).isSocket()).toBe(true);
    const server = new MilterServer(continueAll);
    await server.listen(`unix:${path}`);
    const client = await MilterClient.connect(`unix:${path}`);
    expect((await client.negotiate()).version).toBe(6);
    client.destroy();
    await server.shutdown(1000);
  });

  it("refuses to take over a socket another process serves", async () => {
    const path = join(dir, "live.sock");
    const first = new MilterServer(continueAll);
    await first.listen(`unix:${path}`);
    await expect(new MilterServer(continueAll).listen(`unix:${path}`)).rejects.toThrow(/another process/);
    await first.shutdown(1000);
  });

  it("never deletes a regular file in the way", async () => {
    const path = join(dir, "not-a-socket");
    await writeFile(path, "precious");
    await expect(new MilterServer(continueAll).listen(`unix:${path}`)).rejects.toThrow(ListenError);
    expect((await stat(path)).isFile()).toBe(true);
  });

  it("reports a port in use as a ListenError", async () => {
    const first = await startServer(continueAll);
    const address = first.address;
    await expect(new MilterServer(continueAll).listen(address)).rejects.toThrow(/EADDRINUSE/);
    await first.stop();
  });
});

describe("limits", () => {
  it("closes connections beyond max_connections and keeps serving the others", async () => {
    const refused: string[] = [];
    const test = await startServer(continueAll, { maxConnections: 2 });
    test.server.on("refused", (reason) => refused.push(reason));
    const a = await test.connect();
    const b = await test.connect();
    await a.negotiate();
    await b.negotiate();
    const c = await test.connect();
    await expect(c.negotiate()).rejects.toThrow(/closed/);
    expect(refused).toEqual(["connection limit of 2 reached"]);
    expect(await a.mail("<x@y>")).toEqual({ type: "continue" });
    a.destroy();
    await waitFor(() => test.server.activeConnections === 1);
    const d = await test.connect();
    expect((await d.negotiate()).version).toBe(6);
    b.destroy();
    d.destroy();
    await test.stop();
  });

  it("closes a negotiated connection that stays idle too long", async () => {
    const test = await startServer(continueAll, { idleTimeoutMs: 100 });
    const client = await test.connect();
    await client.negotiate();
    await client.closed();
    expect(test.entries.some((e) => e.message.includes("no command from the MTA in time"))).toBe(true);
    await test.stop();
  });
});

describe("graceful shutdown", () => {
  it("stops accepting, lets the message in flight finish, then resolves", async () => {
    let finishRcpt: (() => void) | undefined;
    const { logger } = recordingLogger();
    const server = new MilterServer(
      () => ({
        rcpt: () =>
          new Promise((resolve) => {
            finishRcpt = () => resolve(reply.tempfail(452, "4.2.2", "full"));
          }),
        eom: () => undefined,
      }),
      { logger },
    );
    const address = await server.listen({ kind: "tcp", host: "127.0.0.1", port: 0, family: 4 });
    const client = await MilterClient.connect(address);
    await client.negotiate();
    await client.connectInfo(CLIENT);
    const pendingRcpt = client.rcpt("<u@example.org>");
    await waitFor(() => finishRcpt !== undefined);

    const drained = server.shutdown(5000);
    // No new connections once draining started.
    await expect(MilterClient.connect(address).then((c) => c.negotiate())).rejects.toThrow();
    finishRcpt?.();
    expect(await pendingRcpt).toEqual({ type: "replycode", text: "452 4.2.2 full" });
    expect((await client.eom()).reply).toEqual({ type: "continue" });
    client.quit();
    expect(await drained).toEqual({ cut: 0 });
  });

  it("does not wait for a connection that never negotiated", async () => {
    const test = await startServer(continueAll);
    const address = test.address;
    if (address.kind !== "tcp") throw new Error("tcp expected");
    const idle = createConnection({ host: address.host, port: address.port });
    await new Promise((r) => idle.once("connect", r));
    await waitFor(() => test.server.activeConnections === 1);
    const started = Date.now();
    expect(await test.server.shutdown(5000)).toEqual({ cut: 0 });
    expect(Date.now() - started).toBeLessThan(1000);
    idle.destroy();
  });

  it("cuts connections still open when the timeout ends", async () => {
    const test = await startServer(continueAll);
    const client = await test.connect();
    await client.negotiate();
    const started = Date.now();
    expect(await test.server.shutdown(150)).toEqual({ cut: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await client.closed();
  });
});
