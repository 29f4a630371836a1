/**
 * A private rbldnsd on a free loopback UDP port, serving test block lists from a temporary
 * directory. It runs in the foreground (-n) in its own process group and is stopped by that
 * group's ID, never by name. rbldnsd refuses to run as root, so it drops to the `rbldns` user the
 * Debian package creates (or `nobody`); the directory and zone files are made readable for it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const RBLDNSD = "/usr/sbin/rbldnsd";

export type DatasetType = "ip4set" | "ip4trie" | "ip6trie" | "dnset";

export interface Dataset {
  /** File name in the temporary directory; also how `update` names it. */
  file: string;
  zone: string;
  type: DatasetType;
  content: string;
}

export interface Rbldnsd {
  port: number;
  /** For `dns.servers` and Resolver.setServers: "127.0.0.1:PORT". */
  server: string;
  dir: string;
  /** Rewrites a dataset, sends SIGHUP and waits until rbldnsd has reloaded. */
  update(file: string, content: string): Promise<void>;
  /** Everything rbldnsd printed. */
  output(): string;
  stop(): Promise<void>;
}

const SOA = (zone: string) => `$SOA 0 ns.${zone}. hostmaster.${zone}. 0 1h 10m 1d 1m\n`;

/** The zones of the DNSBL tests, one per kind of list health. */
export const ZONES = {
  /** Lists 127.0.0.2 (RFC 5782) and test clients; multiple A records for 127.0.0.20. */
  healthy: "bl.test",
  /** ip4trie 0.0.0.0/0: lists the world, like ORDB in March 2008. */
  everything: "everything.test",
  /** Empty: 127.0.0.2 is not listed (an emptied list, like SORBS in 2024). */
  empty: "empty.test",
  /** Answers Spamhaus's "open resolver" error code for everything. */
  spamhausError: "zen.spamhaus.test",
  /** Answers 198.51.100.7 (outside 127/8) for everything, like a parked domain's wildcard. */
  parked: "parked.test",
  /** Answers 127.0.0.1 for everything, as URIBL does to refuse a resolver. */
  refusing: "uribl.test",
  /** A domain list (RHSBL/DBL): TEST listed, INVALID not; IP queries get 127.0.1.255 like DBL. */
  domains: "rhsbl.test",
  /** Starts healthy; tests rewrite it with `update("flip.zone", …)`. */
  flip: "flip.test",
} as const;

export const HEALTHY_IP4 = `:127.0.0.2:Listed in bl.test, see http://bl.test/lookup?ip=$
127.0.0.2/32
127.0.0.5/32 :127.0.0.2:Client $ sent spam to our traps
127.0.0.6/32 :127.0.0.3:${"Long reason ".repeat(20).trim()}
127.0.0.8/32 :127.255.255.254:Query refused: open resolver
127.0.0.9/32 :198.51.100.9:wildcard
127.0.0.20/32 :127.0.0.4:Exploited host
`;

export const EVERYTHING_IP4 = "0.0.0.0/0 :127.0.0.2:Blocked - see http://www.ordb.org/faq/#why_rejected\n";

export function standardDatasets(): Dataset[] {
  const z = ZONES;
  return [
    { file: "healthy4.zone", zone: z.healthy, type: "ip4trie", content: SOA(z.healthy) + HEALTHY_IP4 },
    // A second dataset in the same zone: 127.0.0.20 gets two A records (like Zen's .4 and .10).
    {
      file: "healthy4b.zone",
      zone: z.healthy,
      type: "ip4set",
      content: "127.0.0.20 :127.0.0.10:Policy listing\n",
    },
    {
      file: "healthy6.zone",
      zone: z.healthy,
      type: "ip6trie",
      content: ":127.0.0.2:IPv6 client listed\n2001:db8:1::5\n",
    },
    {
      file: "everything.zone",
      zone: z.everything,
      type: "ip4trie",
      content: SOA(z.everything) + EVERYTHING_IP4,
    },
    { file: "everything6.zone", zone: z.everything, type: "ip6trie", content: "::/0 :127.0.0.2:Blocked\n" },
    { file: "empty.zone", zone: z.empty, type: "ip4trie", content: `${SOA(z.empty)}# nothing listed\n` },
    {
      file: "spamhaus.zone",
      zone: z.spamhausError,
      type: "ip4trie",
      content: `${SOA(z.spamhausError)}0.0.0.0/0 :127.255.255.254:Error: open resolver; see https://www.spamhaus.org/returnc/pub/\n`,
    },
    {
      file: "parked.zone",
      zone: z.parked,
      type: "ip4trie",
      content: `${SOA(z.parked)}0.0.0.0/0 :198.51.100.7:\n`,
    },
    {
      file: "refusing.zone",
      zone: z.refusing,
      type: "ip4trie",
      content: `${SOA(z.refusing)}0.0.0.0/0 :127.0.0.1:Query refused\n`,
    },
    {
      file: "domains.zone",
      zone: z.domains,
      type: "dnset",
      content: `${SOA(z.domains)}:127.0.0.2:Domain listed\ntest\nspammer.example :127.0.0.2:spammer.example sends spam\n*.bad.example :127.0.0.3:Subdomain of bad.example\nxn--bcher-kva.example\n`,
    },
    {
      file: "domains-ip.zone",
      zone: z.domains,
      type: "ip4trie",
      content: "0.0.0.0/0 :127.0.1.255:IP queried\n",
    },
    { file: "flip.zone", zone: z.flip, type: "ip4trie", content: SOA(z.flip) + HEALTHY_IP4 },
  ];
}

/** A loopback UDP port nothing listens on right now. */
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve());
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

function runAsUser(): string {
  const passwd = readFileSync("/etc/passwd", "utf8");
  return /^rbldns:/m.test(passwd) ? "rbldns" : "nobody";
}

function waitFor(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(what()));
      setTimeout(tick, 10);
    };
    tick();
  });
}

export async function startRbldnsd(datasets: Dataset[] = standardDatasets()): Promise<Rbldnsd> {
  if (!existsSync(RBLDNSD))
    throw new Error(`${RBLDNSD} is missing: run scripts/install-test-deps.sh (as root)`);
  const dir = await mkdtemp(join(tmpdir(), "filterctl-rbldnsd-"));
  await chmod(dir, 0o755);
  const files = new Map<string, string>();
  let mtime = Math.floor(Date.now() / 1000);
  for (const d of datasets) {
    const path = join(dir, d.file);
    await writeFile(path, d.content, { mode: 0o644 });
    await chmod(path, 0o644);
    files.set(d.file, path);
  }
  const specs = datasets.map((d) => `${d.zone}:${d.type}:${files.get(d.file)}`);

  let child: ChildProcess | undefined;
  let out = "";
  let port = 0;
  // The free port is found by binding and closing it: another process may take it in between, so retry.
  for (let attempt = 0; attempt < 5; attempt++) {
    port = await freeUdpPort();
    out = "";
    const started: ChildProcess = spawn(
      RBLDNSD,
      ["-n", "-u", runAsUser(), "-b", `127.0.0.1/${port}`, "-4", "-t", "1s", ...specs],
      { cwd: dir, detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
    const collect = (chunk: Buffer) => {
      out += chunk.toString("utf8");
    };
    started.stdout?.on("data", collect);
    started.stderr?.on("data", collect);
    let exited = false;
    started.once("exit", () => {
      exited = true;
    });
    try {
      await waitFor(
        () => exited || / started \(/.test(out),
        10_000,
        () => `rbldnsd did not start:\n${out}`,
      );
    } catch (error) {
      if (started.pid !== undefined) process.kill(-started.pid, "SIGKILL");
      throw error;
    }
    if (!exited) {
      child = started;
      break;
    }
    if (!/in use/i.test(out)) break;
  }
  if (child === undefined || child.pid === undefined) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`rbldnsd could not start:\n${out}`);
  }
  const pid = child.pid;
  const exit = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });

  const reloads = () => out.match(/zones reloaded/g)?.length ?? 0;

  return {
    port,
    server: `127.0.0.1:${port}`,
    dir,
    output: () => out,
    async update(file, content) {
      const path = files.get(file);
      if (path === undefined) throw new Error(`no dataset file ${file}`);
      const before = reloads();
      await writeFile(path, content, { mode: 0o644 });
      // rbldnsd reloads only files whose modification time changed: make sure it did.
      mtime = Math.max(mtime + 1, Math.floor(Date.now() / 1000));
      await utimes(path, mtime, mtime);
      process.kill(pid, "SIGHUP");
      await waitFor(
        () => reloads() > before,
        5_000,
        () => `rbldnsd did not reload ${file}:\n${out}`,
      );
    },
    async stop() {
      try {
        process.kill(-pid, "SIGTERM");
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
      }, 3_000);
      await exit;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface UdpProxy {
  server: string;
  /** true: swallow every query (a DNS server that went silent); false: forward to the target. */
  blackHole: boolean;
  close(): Promise<void>;
}

/** A loopback UDP relay in front of a DNS server, which can be switched to drop everything. */
export async function startUdpProxy(target: { port: number }): Promise<UdpProxy> {
  const front = createSocket("udp4");
  const back = createSocket("udp4");
  const clients = new Map<number, { port: number; address: string }>();
  await new Promise<void>((resolve) => front.bind(0, "127.0.0.1", () => resolve()));
  await new Promise<void>((resolve) => back.bind(0, "127.0.0.1", () => resolve()));
  const proxy: UdpProxy = {
    server: `127.0.0.1:${front.address().port}`,
    blackHole: false,
    async close() {
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await new Promise<void>((resolve) => back.close(() => resolve()));
    },
  };
  front.on("message", (message, from) => {
    if (proxy.blackHole || message.length < 2) return;
    clients.set(message.readUInt16BE(0), { port: from.port, address: from.address });
    back.send(message, target.port, "127.0.0.1");
  });
  back.on("message", (message) => {
    if (proxy.blackHole || message.length < 2) return;
    const client = clients.get(message.readUInt16BE(0));
    if (client !== undefined) front.send(message, client.port, client.address);
  });
  return proxy;
}
