import { afterEach, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { freePort, type RunningCli, runCli, startCli } from "./run.js";

let running: RunningCli | undefined;
afterEach(() => {
  if (running?.child.exitCode === null) process.kill(-(running.child.pid as number), "SIGKILL");
  running = undefined;
});

describe("filterctl command line", () => {
  it("prints help with every command and exits 0", () => {
    const { status, stdout } = runCli(["--help"]);
    expect(status).toBe(0);
    expect(stdout).toContain("serve [options]");
    const serveHelp = runCli(["serve", "--help"]);
    expect(serveHelp.status).toBe(0);
    expect(serveHelp.stdout).toContain("--listen <socket>");
  });

  it("prints the package version", () => {
    const { status, stdout } = runCli(["--version"]);
    expect(status).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("exits 2 on usage errors, naming the problem", () => {
    const badListen = runCli(["serve", "--listen", "tcp:1.2.3.4:25"]);
    expect(badListen.status).toBe(2);
    expect(badListen.stderr).toContain("unknown socket type 'tcp'");
    expect(runCli(["serve", "--no-such-option"]).status).toBe(2);
    expect(runCli(["frobnicate"]).status).toBe(2);
    expect(runCli(["serve", "--log-format", "xml"]).status).toBe(2);
  });
});

describe("filterctl serve", () => {
  it("serves continue, logs each event as a JSON line, and drains on SIGTERM", async () => {
    const port = await freePort();
    running = startCli(["serve", "--listen", `inet:${port}@127.0.0.1`, "--shutdown-timeout", "5"]);
    await running.waitForLine((l) => l.msg === "milter listening");
    const client = await MilterClient.connect(`inet:${port}@127.0.0.1`);
    await client.negotiate();
    await client.connectInfo({
      hostname: "client.example",
      family: "inet",
      port: 1234,
      address: "192.0.2.9",
    });
    await client.helo("client.example");
    expect(await client.mail("<alice@example.org>", ["SIZE=10"])).toEqual({ type: "continue" });
    expect(await client.rcpt("<bob@example.org>")).toEqual({ type: "continue" });

    // SIGTERM while a message is in flight: the message still completes.
    process.kill(running.child.pid as number, "SIGTERM");
    await running.waitForLine((l) => String(l.msg).startsWith("stopping"));
    expect(await client.data()).toEqual({ type: "continue" });
    expect(await client.header("Subject", "hello")).toEqual({ type: "continue" });
    expect(await client.eoh()).toEqual({ type: "continue" });
    expect((await client.eom()).reply).toEqual({ type: "continue" });
    client.quit();
    expect(await running.exit).toBe(0);

    const events = running.lines().filter((l) => l.msg === "event");
    expect(events.map((e) => e.stage)).toEqual([
      "connect",
      "helo",
      "mail",
      "rcpt",
      "data",
      "header",
      "eoh",
      "eom",
      "close",
    ]);
    expect(events[0]).toMatchObject({ client: "192.0.2.9", port: 1234 });
    expect(events[2]).toMatchObject({ from: "<alice@example.org>", args: ["SIZE=10"] });
    expect(events[5]).toMatchObject({ name: "Subject", value: "hello" });
  });

  it("exits 2 with a clear message when the port is taken", async () => {
    const port = await freePort();
    running = startCli(["serve", "--listen", `inet:127.0.0.1:${port}`]);
    await running.waitForLine((l) => l.msg === "milter listening");
    const second = runCli(["serve", "--listen", `inet:127.0.0.1:${port}`]);
    expect(second.status).toBe(2);
    expect(second.stderr).toContain("EADDRINUSE");
    process.kill(running.child.pid as number, "SIGTERM");
    expect(await running.exit).toBe(0);
  });

  it("writes human lines with --log-format pretty", async () => {
    const port = await freePort();
    running = startCli(["serve", "--listen", `inet:127.0.0.1:${port}`, "--log-format", "pretty"]);
    const deadline = Date.now() + 10_000;
    while (!running.stdout().includes("milter listening") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(running.stdout()).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}msg="milter listening" listen=inet:\d+@127\.0\.0\.1/m,
    );
    process.kill(running.child.pid as number, "SIGTERM");
    expect(await running.exit).toBe(0);
  });
});
