/**
 * `serve --workers 2`, the real command: both workers answer sessions on the one socket, a rules
 * edit reaches both, /metrics sums them, a killed worker is replaced (with the rules the primary
 * last validated), SIGTERM exits 0.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { workerJournalPath } from "../../src/cli/serve-worker-protocol.js";
import { MilterClient } from "../../src/milter/index.js";
import { freePort, type RunningCli, startCli } from "./run.js";

const dir = mkdtempSync(join(tmpdir(), "filterctl-workers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let running: RunningCli | undefined;
afterEach(() => {
  if (running?.child.exitCode === null) process.kill(-(running.child.pid as number), "SIGKILL");
  running = undefined;
});

function rules(locals: string[]): string {
  const list = locals.map((l) => `"${l}"`).join(", ");
  return `rules:\n  - name: blocked\n    on: rcpt\n    if: rcpt.local in [${list}]\n    then: reject 550 5.7.1 "blocked"\n`;
}

/** One session up to RCPT; answers the RCPT reply. */
async function rcpt(listen: string, local: string): Promise<unknown> {
  const client = await MilterClient.connect(listen);
  await client.negotiate();
  await client.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: "192.0.2.9" });
  await client.mail("<a@example.com>");
  const reply = await client.rcpt(`<${local}@example.org>`);
  client.quit();
  return reply;
}

const REJECT = { type: "replycode", text: "550 5.7.1 blocked" };

/**
 * Sends sessions, four at a time, until both workers have answered one: the workers accept on the
 * shared socket themselves, so the kernel, not a rotation, picks which one gets a connection.
 */
async function untilBothAnswer(listen: string, local: string, answered: () => number): Promise<number> {
  let sent = 0;
  for (let round = 0; round < 50 && answered() < 2; round++) {
    const replies = await Promise.all(Array.from({ length: 4 }, () => rcpt(listen, local)));
    for (const reply of replies) expect(reply).toEqual(REJECT);
    sent += replies.length;
    // The decision lines come through the workers' stdout, a moment after the replies.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(answered()).toBe(2);
  return sent;
}

async function metricValue(metrics: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${metrics}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1]);
}

describe("filterctl serve --workers 2", () => {
  it("serves through both workers, reloads both, aggregates metrics, replaces a dead worker, drains on SIGTERM", async () => {
    const config = join(dir, "rules.yaml");
    writeFileSync(config, rules(["bad"]));
    const [port, metricsPort] = [await freePort(), await freePort()];
    const listen = `inet:${port}@127.0.0.1`;
    const metrics = `127.0.0.1:${metricsPort}`;
    running = startCli([
      "serve",
      "--config",
      config,
      "--listen",
      listen,
      "--metrics",
      metrics,
      "--workers",
      "2",
    ]);
    const cli = running;
    await cli.waitForLine((l) => l.msg === "workers serving", 30_000);
    // Gauges that describe a state are not summed: the generation both serve (1), build_info 1.
    expect(await metricValue(metrics, "filterctl_config_generation")).toBe(1);
    expect(await metricValue(metrics, 'filterctl_build_info{version="0.1.0"}')).toBe(1);
    const workerPids = () =>
      new Set(
        cli
          .lines()
          .filter((l) => l.msg === "decision")
          .map((l) => l.pid),
      );

    let sent = 0;
    sent += await untilBothAnswer(listen, "bad", () => workerPids().size);

    // An edit: the primary validates it once, then every worker serves the new rule.
    writeFileSync(config, rules(["bad", "new"]));
    await cli.waitForLine(
      () =>
        cli.lines().filter((l) => l.generation === 2 && String(l.msg).startsWith("reloaded")).length === 2,
      20_000,
    );
    const before = workerPids().size;
    sent += await untilBothAnswer(
      listen,
      "new",
      () =>
        new Set(
          cli
            .lines()
            .filter((l) => l.rule === "blocked" && l.generation === 2)
            .map((l) => l.pid),
        ).size,
    );
    expect(before).toBe(2);

    // An invalid edit is refused by the primary; no worker reloads.
    writeFileSync(config, "rules:\n  - on rcpt: if nonsense then reject\n");
    await cli.waitForLine((l) => String(l.msg).startsWith("reload refused, no worker reloads"), 20_000);
    // Counted as in one process: each reload once (not once per worker), the refused one too.
    expect(await metricValue(metrics, 'filterctl_reloads_total{result="success"}')).toBe(1);
    expect(await metricValue(metrics, 'filterctl_reloads_total{result="failure"}')).toBe(1);
    // The workers watch nothing, even after a reload: only the primary read the invalid file.
    expect(cli.lines().filter((l) => String(l.msg).startsWith("reload refused, still serving"))).toEqual([]);

    expect(await metricValue(metrics, "filterctl_sessions_total")).toBe(sent);
    expect(await metricValue(metrics, "filterctl_workers")).toBe(2);

    // kill -9 one worker while the file on disk is still the refused one: it is logged with its
    // signal and replaced, and the replacement loads the rules the primary last validated (it
    // rejects "new"), not the file, which it would refuse to start with, under the same generation.
    const victim = [...workerPids()][0] as number;
    process.kill(victim, "SIGKILL");
    const died = await cli.waitForLine((l) => String(l.msg).startsWith(`worker ${victim} died`), 20_000);
    expect(died).toMatchObject({ signal: "SIGKILL" });
    const replacement = await cli.waitForLine(
      (l) => l.msg === "worker serving" && l.pid !== victim && (l.time as number) > (died.time as number),
      30_000,
    );
    const replacementRejects = () =>
      cli.lines().filter((l) => l.pid === replacement.pid && l.rule === "blocked").length;
    for (let round = 0; round < 50 && replacementRejects() === 0; round++) {
      for (const reply of await Promise.all(Array.from({ length: 4 }, () => rcpt(listen, "new"))))
        expect(reply).toEqual(REJECT);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(replacementRejects()).toBeGreaterThan(0);
    // It serves them as generation 2, as the other worker does: the generation every worker has reached is still 2.
    expect(
      cli.lines().filter((l) => l.pid === replacement.pid && l.rule === "blocked" && l.generation !== 2),
    ).toEqual([]);
    expect(await metricValue(metrics, "filterctl_config_generation")).toBe(2);
    expect(cli.lines().filter((l) => l.msg === "worker restart failed")).toEqual([]);
    writeFileSync(config, rules(["bad", "new"]));
    for (let i = 0; i < 4; i++) expect(await rcpt(listen, "bad")).toEqual(REJECT);

    const stopAt = Date.now();
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
    expect(Date.now() - stopAt).toBeLessThan(10_000);
  }, 120_000);

  it("shares one unix socket the main process creates with listen_mode, and removes it at the end", async () => {
    const config = join(dir, "unix.yaml");
    // The file's `workers:` this time (the test above gives --workers).
    writeFileSync(config, `listen_mode: "0660"\nworkers: 2\n${rules(["bad"])}`);
    const socket = join(dir, "m.sock");
    const journal = join(dir, "journal", "j.jsonl");
    mkdirSync(join(dir, "journal"));
    running = startCli(["serve", "--config", config, "--listen", `unix:${socket}`, "--journal", journal]);
    const cli = running;
    await cli.waitForLine((l) => l.msg === "workers serving", 30_000);
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    // Neither worker took the other's socket for a stale one (their lines may come a moment later:
    // log lines are written in batches).
    await cli.waitForLine(() => cli.lines().filter((l) => l.msg === "milter listening").length === 2, 5_000);
    expect(cli.lines().filter((l) => l.msg === "milter listening")).toHaveLength(2);
    for (let i = 0; i < 4; i++) expect(await rcpt(`unix:${socket}`, "bad")).toEqual(REJECT);
    // A replacement worker joins the live socket: it must not take it for another process's.
    const victim = cli.lines().find((l) => l.msg === "worker serving")?.pid as number;
    process.kill(victim, "SIGKILL");
    await cli.waitForLine((l) => String(l.msg).startsWith(`worker ${victim} died`), 20_000);
    await cli.waitForLine(
      (l) =>
        l.msg === "worker serving" &&
        l.pid !== victim &&
        cli.lines().filter((m) => m.msg === "worker serving").length === 3,
      30_000,
    );
    expect(cli.lines().filter((l) => String(l.msg).startsWith("worker restart failed"))).toEqual([]);
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    for (let i = 0; i < 4; i++) expect(await rcpt(`unix:${socket}`, "bad")).toEqual(REJECT);
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);
    // A journal file per worker slot: the replacement writes the dead worker's file, not a third.
    expect(readdirSync(join(dir, "journal")).sort()).toEqual(["j-w1.jsonl", "j-w2.jsonl"]);
    const lines = ["j-w1.jsonl", "j-w2.jsonl"].flatMap((f) =>
      readFileSync(join(dir, "journal", f), "utf8")
        .split("\n")
        .filter(Boolean),
    );
    // The killed worker's unflushed lines may be lost; those after the restart are all there.
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) expect(JSON.parse(line)).toHaveProperty("v", 1);
  }, 60_000);
});

describe("filterctl serve --workers 2 without a rules file", () => {
  it("a worker started again serves as the main process decided at start, even once ./rules.yaml exists", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "filterctl-workers-norules-"));
    const port = await freePort();
    const listen = `inet:${port}@127.0.0.1`;
    running = startCli(["serve", "--listen", listen, "--workers", "2"], { cwd });
    const cli = running;
    await cli.waitForLine((l) => l.msg === "workers serving", 30_000);
    const pass = await rcpt(listen, "bad");
    expect(pass).toEqual({ type: "continue" });
    // A rules file appears; the main process serves none until a restart, so neither may a new worker.
    writeFileSync(join(cwd, "rules.yaml"), rules(["bad"]));
    // Workers' lines come through the main process's pipe, maybe after its own.
    const victim = (await cli.waitForLine((l) => l.msg === "worker serving", 10_000)).pid as number;
    process.kill(victim, "SIGKILL");
    const died = await cli.waitForLine((l) => String(l.msg).startsWith(`worker ${victim} died`), 20_000);
    await cli.waitForLine(
      (l) => l.msg === "worker serving" && l.pid !== victim && (l.time as number) > (died.time as number),
      30_000,
    );
    for (let i = 0; i < 8; i++) expect(await rcpt(listen, "bad")).toEqual(pass);
    expect(cli.lines().filter((l) => l.msg === "rules loaded")).toEqual([]);
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
    rmSync(cwd, { recursive: true, force: true });
  }, 90_000);
});

describe("workerJournalPath", () => {
  it("puts the worker's slot before the extension, or at the end", () => {
    expect(workerJournalPath("/var/lib/filterctl/journal.jsonl", "2")).toBe(
      "/var/lib/filterctl/journal-w2.jsonl",
    );
    expect(workerJournalPath("/var/lib/filter.d/journal", "1")).toBe("/var/lib/filter.d/journal-w1");
    expect(workerJournalPath("/var/lib/.journal", "3")).toBe("/var/lib/.journal-w3");
    expect(workerJournalPath("journal.jsonl", undefined)).toBe("journal.jsonl");
  });
});
