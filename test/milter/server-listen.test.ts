/**
 * A unix socket is born with the configured mode, never wider, even under umask 000: the mode
 * is read synchronously right after bind(2), before the chmod that follows listening could run.
 */
import { statSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MilterServer } from "../../src/milter/index.js";

let dir: string;
let umask: number;
let listen: typeof Server.prototype.listen;
/** Modes of the socket file right after each synchronous bind. */
let bornModes: number[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "filterctl-listen-"));
  // The widest umask a service manager might hand over.
  umask = process.umask(0);
  bornModes = [];
  listen = Server.prototype.listen;
  // A probe, not a stand-in: the real listen runs, then the file it made is looked at at once.
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    const result = (listen as (...a: unknown[]) => Server).apply(this, args);
    if (typeof args[0] === "string") bornModes.push(statSync(args[0]).mode & 0o777);
    return result;
  } as typeof Server.prototype.listen;
});
afterEach(async () => {
  Server.prototype.listen = listen;
  process.umask(umask);
  await rm(dir, { recursive: true, force: true });
});

describe("unix socket mode", () => {
  it.each(["0660", "0600", "0666"])(
    "is born with at most %s under umask 000, then is exactly it",
    async (text) => {
      const mode = Number.parseInt(text, 8);
      const path = join(dir, "milter.sock");
      const server = new MilterServer(() => ({}), { socketMode: mode });
      await server.listen(`unix:${path}`);
      expect(bornModes).toHaveLength(1);
      expect((bornModes[0] as number) & ~mode).toBe(0);
      expect((await stat(path)).mode & 0o777).toBe(mode);
      await server.shutdown(1000);
    },
  );

  it("leaves the process umask as it was", async () => {
    process.umask(0o027);
    const server = new MilterServer(() => ({}), { socketMode: 0o660 });
    await server.listen(`unix:${join(dir, "m.sock")}`);
    expect(process.umask(0o027)).toBe(0o027);
    // Under umask 027 the socket is born 0640 and widened to exactly the mode asked for.
    expect(bornModes).toEqual([0o640]);
    expect((await stat(join(dir, "m.sock"))).mode & 0o777).toBe(0o660);
    await server.shutdown(1000);
  });
});
