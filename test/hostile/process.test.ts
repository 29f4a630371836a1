/**
 * Process-level hardening of the real `filterctl serve` (SPEC "Hardening"): a signal that would
 * open a debugger, a socket briefly open to every local user, a log line a peer can forge, a
 * metrics address that cannot be bound after the milter already listens, and a message whose
 * headers each make a rule add one. Loopback only; every wait is bounded.
 */
import { spawnSync } from "node:child_process";
import {
  type FSWatcher,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  watch,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { MilterClient } from "../../src/milter/index.js";
import { runCli } from "../cli/run.js";
import { Background, freePort } from "../e2e/processes.js";
import { FILTERCTL_BIN, ServeProcess } from "../support/serve-process.js";

const dirs: string[] = [];
const running: { stop(): Promise<void> }[] = [];

afterEach(async () => {
  for (const process of running.splice(0)) await process.stop();
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "filterctl-hostile-process-"));
  dirs.push(dir);
  const path = join(dir, "rules.yaml");
  writeFileSync(path, text);
  return path;
}

async function serve(options: Parameters<typeof ServeProcess.start>[0]): Promise<ServeProcess> {
  const started = await ServeProcess.start(options);
  running.push(started);
  return started;
}

function background(command: string, args: string[]): Background {
  const started = new Background(command, args);
  running.push(started);
  return started;
}

/** TCP ports a process listens on: its socket inodes matched against its network namespace's tables. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (socket !== null) inodes.add(socket[1] as string);
    } catch {
      // The fd closed meanwhile.
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/);
      // Column 4 is the state (0A = LISTEN), column 10 the inode.
      if (columns[3] === "0A" && inodes.has(columns[9] as string))
        ports.push(Number.parseInt((columns[1] as string).split(":")[1] as string, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

const ISO_LINE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) /;

/** A sender whose local part carries CR, LF and an escape sequence that clears the screen. */
const FORGING_SENDER = "x\r\nforged line rule=allow-all\x1b[2J@evil.example";

const LOGGING_RULES = `
rules:
  - name: note-sender
    on: mail
    then: 'log "sender {from}"'
  - name: refuse-evil
    on: mail
    if: from.domain == "evil.example"
    then: 'reject 550 5.7.1 "no"'
`;

async function sendForgingSender(port: number): Promise<void> {
  const client = await MilterClient.connect(`inet:${port}@127.0.0.1`);
  try {
    await client.negotiate();
    await client.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: "192.0.2.9" });
    expect(await client.mail(`<${FORGING_SENDER}>`)).toMatchObject({ type: "replycode" });
  } finally {
    client.destroy();
  }
}

describe("SIGUSR1", () => {
  it("does not open Node's inspector: serve logs it, keeps running and keeps serving", async () => {
    const server = await serve({ config: configFile("rules: []\n") });
    expect(listeningPorts(server.pid)).toEqual([server.port]);
    server.signal("SIGUSR1");
    const noted = await server
      .waitForLine((line) => String(line.msg).startsWith("SIGUSR1 ignored"), 3000)
      .catch(() => undefined);
    // The inspector would bind 9229 (or say on stderr that it could not): give it time to.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(server.running).toBe(true);
    expect(listeningPorts(server.pid)).toEqual([server.port]);
    expect(server.other).not.toMatch(/inspector|debugger/i);
    expect(noted).toMatchObject({ signal: "SIGUSR1" });
    const client = await MilterClient.connect(`inet:${server.port}@127.0.0.1`);
    await client.negotiate();
    client.destroy();
  });
});

describe("a --metrics address that cannot be bound", () => {
  let occupied: Server | undefined;
  afterEach(() => {
    occupied?.close();
    occupied = undefined;
  });

  const cases: [string, () => Promise<string>, RegExp][] = [
    [
      "in use",
      async () => {
        const port = await freePort();
        occupied = createServer();
        await new Promise<void>((resolve) => occupied?.listen(port, "127.0.0.1", resolve));
        return `127.0.0.1:${port}`;
      },
      /address already in use/,
    ],
    ["not on this host", async () => `192.0.2.1:${await freePort()}`, /no such address on this host/],
    ["a host name that does not resolve", async () => "no-such-host.invalid:9890", /host name not found/],
  ];

  it.each(cases)("(%s) exits 2 with one line, before the milter listens", async (_, address, reason) => {
    const metrics = await address();
    const milterPort = await freePort();
    const child = background(process.execPath, [
      FILTERCTL_BIN,
      "serve",
      "--config",
      configFile("rules: []\n"),
      "--listen",
      `inet:127.0.0.1:${milterPort}`,
      "--metrics",
      metrics,
    ]);
    // Knock on the milter port while the process lives: nothing may ever answer there.
    let answered = 0;
    const deadline = Date.now() + 20_000;
    while (child.running && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const probe = createConnection({ host: "127.0.0.1", port: milterPort });
        probe.once("connect", () => {
          answered++;
          probe.destroy();
          resolve();
        });
        probe.once("error", () => resolve());
      });
      await child.waitForExit(10);
    }
    expect(child.exitStatus?.code, child.output()).toBe(2);
    expect(answered).toBe(0);
    expect(child.stdout).not.toMatch(/milter listening/);
    const stderr = child.stderr.trimEnd();
    expect(stderr.split("\n")).toHaveLength(1);
    expect(stderr).toContain(`filterctl: cannot serve metrics on ${metrics}: `);
    expect(stderr).toMatch(reason);
  });
});

describe("listen_mode", () => {
  it("a world-writable mode is a validate warning at the value, saying what to use", () => {
    const config = configFile('listen: "unix:/run/filterctl/milter.sock"\nlisten_mode: "0777"\nrules: []\n');
    const result = runCli(["validate", "--config", config]);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(
      `${config}:2:14: warning: listen_mode "0777" lets every local user connect to the milter socket (use "0770" and add the MTA's user to the socket's group)`,
    );
    const json = JSON.parse(runCli(["validate", "--config", config, "--json"]).stdout) as {
      diagnostics: { line: number; column: number; severity: string }[];
    };
    expect(json.diagnostics).toMatchObject([{ line: 2, column: 14, severity: "warning" }]);
    const unquoted = configFile("listen_mode: 0666\nrules: []\n");
    expect(runCli(["validate", "--config", unquoted]).stdout).toContain(
      `${unquoted}:1:14: warning: listen_mode "0666"`,
    );
    const safe = configFile('listen_mode: "0660"\nrules: []\n');
    expect(runCli(["validate", "--config", safe]).stdout).toContain("0 warnings");
  });

  it("the socket file is never seen wider than listen_mode, even under umask 000", async () => {
    expect(spawnSync("strace", ["-V"]).status, "strace is needed to hold the process after bind").toBe(0);
    const config = configFile('listen_mode: "0660"\nrules: []\n');
    const dir = join(config, "..");
    const path = join(dir, "milter.sock");
    // strace holds the process for 1 s right after bind(2): what the file looks like before
    // anything else runs is seen for sure, not by luck of timing.
    const child = background("sh", [
      "-c",
      'umask 000; exec strace -f -qq -o /dev/null -e trace=bind -e inject=bind:delay_exit=1000000 "$@"',
      "sh",
      process.execPath,
      FILTERCTL_BIN,
      "serve",
      "--config",
      config,
      "--listen",
      `unix:${path}`,
    ]);
    const seen: number[] = [];
    const look = () => {
      try {
        const stats = lstatSync(path);
        if (stats.isSocket()) seen.push(stats.mode & 0o777);
      } catch {
        // Not there yet.
      }
    };
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(dir, look);
      const deadline = Date.now() + 20_000;
      while (!/milter listening/.test(child.stdout) && child.running && Date.now() < deadline) {
        look();
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    } finally {
      watcher?.close();
    }
    look();
    expect(child.stdout, child.output()).toMatch(/milter listening/);
    // Seen many times during the second strace holds it, then after the chmod.
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.filter((mode) => (mode & ~0o660) !== 0).map((mode) => mode.toString(8))).toEqual([]);
    expect(seen.at(-1)).toBe(0o660);
  });
});

describe("--log-format pretty", () => {
  it("keeps a MAIL FROM with CR, LF and ESC on one line, escaped, with ISO timestamps", async () => {
    const port = await freePort();
    const child = background(process.execPath, [
      FILTERCTL_BIN,
      "serve",
      "--config",
      configFile(LOGGING_RULES),
      "--listen",
      `inet:127.0.0.1:${port}`,
      "--log-format",
      "pretty",
    ]);
    await child.waitForOutput(/milter listening/, 15_000);
    await sendForgingSender(port);
    await child.waitForOutput(/ msg=decision .*\n/, 5000);
    await child.waitForOutput(/sender .*\n/, 5000);
    const lines = child.stdout.split("\n").slice(0, -1);
    for (const line of lines) expect(line).toMatch(ISO_LINE);
    expect(child.stdout.includes("\r") || child.stdout.includes("\x1b")).toBe(false);
    const escaped = 'x\\r\\nforged line rule=allow-all\\x1b[2J@evil.example"';
    const decision = lines.find((line) => / msg=decision /.test(line));
    expect(decision).toContain(`from="${escaped}`);
    expect(decision).toContain("rule=refuse-evil");
    // The rule's log text (where templates already turn controls into spaces) holds an =: quoted.
    const note = lines.find((line) => line.includes("sender x"));
    expect(note).toMatch(/ INFO {2}msg="sender x\s*forged line rule=allow-all.*@evil\.example" conn=1 /);
    expect(note).toMatch(/ rule=note-sender$/);
  });

  it("JSON logs keep the CR and LF inside the value (checked: already safe)", async () => {
    const server = await serve({ config: configFile(LOGGING_RULES) });
    await sendForgingSender(server.port);
    const decision = await server.waitForLine((line) => line.msg === "decision", 5000);
    expect(decision.from).toBe(FORGING_SENDER);
    expect(server.find((line) => String(line.msg).startsWith("sender x"))).toBeDefined();
    expect(server.other).not.toContain("forged");
  });
});

describe("headers added to one message", () => {
  it("500 headers with an add header rule at header: 100 modifications at end of message, one warning", async () => {
    const server = await serve({
      config: configFile(`
rules:
  - name: tag-each
    on: header
    then: 'add header "X-Seen" "{header.name}"'
`),
    });
    const client = await MilterClient.connect(`inet:${server.port}@127.0.0.1`);
    try {
      await client.negotiate();
      await client.connectInfo({ hostname: "c.example", family: "inet", port: 1, address: "192.0.2.9" });
      await client.helo("c.example");
      await client.mail("<a@example.net>");
      await client.rcpt("<b@example.org>");
      await client.data();
      for (let i = 0; i < 500; i++) await client.header(`X-In-${i}`, "v");
      await client.eoh();
      await client.body(Buffer.from("body\r\n"));
      const end = await client.eom();
      expect(end.reply).toEqual({ type: "continue" });
      expect(end.modifications).toHaveLength(100);
      expect(end.modifications.every((m) => m.type === "addHeader")).toBe(true);
      expect(end.modifications[99]).toEqual({ type: "addHeader", name: "X-Seen", value: "X-In-99" });
    } finally {
      client.destroy();
    }
    const warning = await server.waitForLine((line) => String(line.msg).startsWith("dropped "), 5000);
    expect(warning).toMatchObject({ level: 40, dropped: 400, added: 100, rule: "tag-each" });
    expect(server.lines.filter((line) => String(line.msg).startsWith("dropped "))).toHaveLength(1);
  });
});
