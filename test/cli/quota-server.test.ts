/**
 * `filterctl quota-server`, the real CLI process, over mailboxes made by maildrop.
 */

import { mkdir, unlink, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deliver, HAVE_MAILDROP, MAILDIRMAKE, MaildirFixtures } from "../support/maildir-fixtures.js";
import { freePort, type RunningCli, runCli, startCli } from "./run.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with the exact target given (no URL normalisation on our side). */
function get(
  port: number,
  target: string,
  options: { method?: string; accept?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: target,
        method: options.method ?? "GET",
        headers: options.accept ? { accept: options.accept } : {},
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

let fx: MaildirFixtures;
let configFile: string;
const running: RunningCli[] = [];

async function start(args: string[]): Promise<RunningCli> {
  const cli = startCli(["quota-server", ...args]);
  running.push(cli);
  await cli.waitForLine((l) => l.msg === "quota server listening", 15_000);
  return cli;
}

beforeAll(async () => {
  if (!HAVE_MAILDROP)
    throw new Error(`${MAILDIRMAKE} is missing: run scripts/install-test-deps.sh (package maildrop)`);
  fx = await MaildirFixtures.create("filterctl-quota-server-");
  await fx.underQuota("alice");
  await fx.overBytes("bob");
  // A mailbox whose maildirsize is a directory: the lookup fails (503).
  const broken = await fx.handWritten("broken", "");
  await unlink(join(broken, "maildirsize"));
  await mkdir(join(broken, "maildirsize"));
  // Something a traversal would find if it escaped: <root>/etc/passwd/Maildir.
  await fx.underQuota("etc/passwd");
  configFile = join(fx.root, "rules.yaml");
  await writeFile(
    configFile,
    [
      "sources:",
      "  mailboxes:",
      "    type: maildir",
      `    path: "${fx.template}"`,
      "    timeout: 2s",
      "quota_server:",
      "  source: mailboxes",
      '  listen: "127.0.0.1:1"',
      "",
    ].join("\n"),
  );
});

afterEach(() => {
  for (const cli of running.splice(0)) {
    if (cli.child.exitCode === null && cli.child.signalCode === null)
      process.kill(-(cli.child.pid as number), "SIGKILL");
  }
});

afterAll(async () => {
  await fx?.cleanup();
});

describe("filterctl quota-server", () => {
  it("serves the text and JSON forms, 404, 400, 405, 503; logs JSON lines; SIGTERM exits 0", async () => {
    const port = await freePort();
    const cli = await start(["--config", configFile, "--listen", `127.0.0.1:${port}`]);

    // Text form, both paths.
    const ok = await get(port, "/quota?u=alice");
    expect(ok).toMatchObject({ status: 200, body: "OK alice 3000 50000 3 100\n" });
    expect(ok.headers["content-type"]).toMatch(/^text\/plain/);
    expect(await get(port, "/cgi-bin/quota.cgi?u=bob")).toMatchObject({
      status: 200,
      body: "OVERQUOTA bob 3000 2000 3 0\n",
    });

    // JSON form.
    const json = await get(port, "/quota?u=alice", { accept: "application/json" });
    expect(json.status).toBe(200);
    expect(json.headers["content-type"]).toMatch(/^application\/json/);
    expect(JSON.parse(json.body)).toEqual({
      user: "alice",
      over: false,
      usage: 3000,
      limit: 50000,
      count: 3,
      count_limit: 100,
    });
    expect(
      JSON.parse(
        (await get(port, "/cgi-bin/quota.cgi?u=bob", { accept: "text/html, application/json;q=0.9" })).body,
      ),
    ).toMatchObject({
      user: "bob",
      over: true,
    });

    // size= is the incoming message: 3000 + 47000 = 50000 fits exactly, one byte more does not.
    expect((await get(port, "/quota?u=alice&size=47000")).body).toBe("OK alice 3000 50000 3 100\n");
    expect((await get(port, "/quota?u=alice&size=47001")).body).toBe("OVERQUOTA alice 3000 50000 3 100\n");
    for (const size of ["abc", "-1", "1e9", "1234567890123456"]) {
      expect((await get(port, `/quota?u=alice&size=${size}`)).status, size).toBe(400);
    }

    // Unknown user.
    expect(await get(port, "/quota?u=nosuchuser")).toMatchObject({
      status: 404,
      body: "NOUSER nosuchuser\n",
    });
    expect(
      JSON.parse((await get(port, "/quota?u=nosuchuser", { accept: "application/json" })).body),
    ).toMatchObject({
      user: "nosuchuser",
    });

    // Bad user names: 400, whatever the encoding; the mailbox at <root>/etc/passwd is never reached.
    const bad = [
      "../../etc/passwd",
      "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "%2e%2e%2f",
      "..",
      "%2E%2E",
      "etc/passwd",
      "etc%2fpasswd",
      "a%5cb",
      ".hidden",
      "%2ehidden",
      "a%00b",
      "a%0d%0aInjected:%20yes",
      "a%09b",
      "a%7fb",
      "a%c2%85b",
      "a%20b",
      "a+b",
      "x".repeat(256),
      "%C3%A9".repeat(128),
      "",
    ];
    for (const user of bad) {
      const reply = await get(port, `/quota?u=${user}`);
      expect(reply.status, user).toBe(400);
      expect(reply.body).not.toMatch(/^OK|^OVERQUOTA|^NOUSER/);
    }
    expect((await get(port, "/quota")).status).toBe(400);
    expect((await get(port, "/quota?u=alice&u=bob")).status).toBe(400);
    expect((await get(port, `/quota?u=${"x".repeat(255)}`)).status).toBe(404); // 255 bytes is allowed

    // A lookup that fails is 503, never a guessed answer.
    const failed = await get(port, "/quota?u=broken");
    expect(failed.status).toBe(503);
    expect(failed.body).not.toMatch(/^OK|^OVERQUOTA/);

    // Other paths and methods.
    for (const path of [
      "/",
      "/quota/alice",
      "/cgi-bin/other.cgi?u=alice",
      "/etc/passwd",
      "/QUOTA?u=alice",
      "/cgi-bin/../quota?u=alice",
      "//evil/quota?u=alice",
      "/quota/?u=alice",
    ]) {
      expect((await get(port, path)).status, path).toBe(404);
    }
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
      const reply = await get(port, "/quota?u=alice", { method });
      expect(reply.status, method).toBe(405);
      expect(reply.headers.allow).toBe("GET, HEAD");
    }
    const head = await get(port, "/quota?u=alice", { method: "HEAD" });
    expect(head).toMatchObject({ status: 200, body: "" });
    expect(head.headers["content-length"]).toBe(String("OK alice 3000 50000 3 100\n".length));

    // Logs: one JSON line per request.
    const logs = await cli.waitForLine(
      (l) => l.msg === "quota request" && l.user === "alice" && l.status === 200,
    );
    expect(logs).toMatchObject({ method: "GET", over: false, usage: 3000 });
    // Lines are written in batches: the failure's may come a moment after the success's.
    await cli.waitForLine((l) => l.msg === "quota request failed" && l.user === "broken" && l.status === 503);

    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
    expect(cli.lines().map((l) => l.msg)).toContain("stopped");
  });

  it("a mailbox without maildirsize and without a limit: its measured usage, not zeros", async () => {
    const box = await fx.unlimited("carla");
    const port = await freePort();
    const cli = await start(["--config", configFile, "--listen", `127.0.0.1:${port}`]);
    // 20480 in the root and 20480 in .Work; .Trash's 4000 not counted.
    expect(await get(port, "/quota?u=carla")).toMatchObject({ status: 200, body: "OK carla 40960 0 2 0\n" });
    const json = await get(port, "/cgi-bin/quota.cgi?u=carla", { accept: "application/json" });
    expect(JSON.parse(json.body)).toEqual({
      user: "carla",
      over: false,
      usage: 40960,
      limit: 0,
      count: 2,
      count_limit: 0,
    });
    // No limit: never over, whatever the size.
    expect((await get(port, "/quota?u=carla&size=999999999999")).body).toBe("OK carla 40960 0 2 0\n");
    // Another delivery is seen (the count is not kept past a change of its directories).
    expect(deliver(box.dir, 1000, 9)).toBe(0);
    expect((await get(port, "/quota?u=carla")).body).toBe("OK carla 41960 0 3 0\n");
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
  });

  it("listens on quota_server.listen when --listen is not given", async () => {
    const port = await freePort();
    const file = join(fx.root, "rules-listen.yaml");
    await writeFile(
      file,
      `sources:\n  mailboxes:\n    type: maildir\n    path: "${fx.template}"\nquota_server:\n  source: mailboxes\n  listen: "127.0.0.1:${port}"\n`,
    );
    const cli = await start(["--config", file]);
    expect((await get(port, "/quota?u=alice")).body).toBe("OK alice 3000 50000 3 100\n");
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
  });

  it("serves an mbox source: usage is the spool size, a missing spool is 0", async () => {
    const port = await freePort();
    const spool = join(fx.root, "spool");
    await mkdir(spool);
    const mail = "From a@b Thu Nov 26 14:00:00 2026\nSubject: x\n\nhello\n";
    await writeFile(join(spool, "carol"), mail);
    const size = Buffer.byteLength(mail);
    const limit = size + 4;
    const file = join(fx.root, "rules-mbox.yaml");
    await writeFile(
      file,
      `sources:\n  spool:\n    type: mbox\n    path: "${spool}/{user}"\n    quota: {bytes: ${limit}, messages: 5}\nquota_server:\n  source: spool\n`,
    );
    const cli = await start(["--config", file, "--listen", `127.0.0.1:${port}`]);
    expect((await get(port, "/quota?u=carol&size=4")).body).toBe(`OK carol ${size} ${limit} 1 5\n`);
    expect((await get(port, "/quota?u=carol&size=5")).body).toBe(`OVERQUOTA carol ${size} ${limit} 1 5\n`);
    expect((await get(port, "/quota?u=dan")).body).toBe(`OK dan 0 ${limit} 0 5\n`);
    expect((await get(port, "/quota?u=..%2fcarol")).status).toBe(400);
    process.kill(cli.child.pid as number, "SIGTERM");
    expect(await cli.exit).toBe(0);
  });

  it("exit codes: 1 without quota_server or with an invalid file, 2 for a missing file, a bad --listen or a busy port", async () => {
    const none = join(fx.root, "rules-none.yaml");
    await writeFile(none, `sources:\n  mailboxes:\n    type: maildir\n    path: "${fx.template}"\n`);
    const noSection = runCli(["quota-server", "--config", none]);
    expect(noSection.status).toBe(1);
    expect(noSection.stderr).toContain("quota_server");

    const invalid = join(fx.root, "rules-invalid.yaml");
    await writeFile(
      invalid,
      `sources:\n  mailboxes:\n    type: maildir\n    path: "${fx.template}"\nquota_server:\n  source: mailbox\n`,
    );
    const wrongSource = runCli(["quota-server", "--config", invalid]);
    expect(wrongSource.status).toBe(1);
    expect(wrongSource.stderr).toMatch(/rules-invalid\.yaml:\d+:\d+: error: unknown source 'mailbox'/);

    expect(runCli(["quota-server", "--config", join(fx.root, "missing.yaml")]).status).toBe(2);
    const badListen = runCli(["quota-server", "--config", configFile, "--listen", "127.0.0.1:70000"]);
    expect(badListen.status).toBe(2);
    expect(badListen.stderr).toContain("HOST:PORT");

    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const busy = (blocker.address() as { port: number }).port;
    try {
      const inUse = runCli(["quota-server", "--config", configFile, "--listen", `127.0.0.1:${busy}`]);
      expect(inUse.status).toBe(2);
      expect(inUse.stderr).toContain("EADDRINUSE");
    } finally {
      blocker.close();
    }
  });
});
