/**
 * A private OpenLDAP slapd for tests: its own directory in a temp folder, its own schema and
 * data, a free port on 127.0.0.1, never the system's slapd (`scripts/install-test-deps.sh`
 * installs the packages without configuring one).
 *
 * - slapd.conf (mdb backend, suffix dc=mail, rootdn/rootpw) → `slapadd` loads the LDIF →
 *   `slaptest` converts it to slapd.d → `slapd -d 0 -F slapd.d -h ldap://127.0.0.1:PORT/`.
 *   `-d 0` keeps slapd in the foreground, as our child: its exit is observed and reaped (a
 *   daemonised slapd would be reparented and could linger as a zombie that still "exists").
 * - Debian ships no sendmail.schema, and misc.schema's mailLocalAddress has no SUBSTR rule (so a
 *   `*` injected into a filter could not match anything there and a filter-injection test would
 *   prove nothing). Our own schema defines sendmailMTAClassValue and mailLocalAddress with
 *   case-insensitive EQUALITY and SUBSTR rules, under a private OID arc.
 * - ACL: the bind DN reads everything; anonymous may bind (to authenticate) but read nothing.
 * - Signals go to the PID from slapd's pidfile (checked to be our child), never by name.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Client } from "ldapts";

const run = promisify(execFile);

export const SUFFIX = "dc=mail";
export const ROOT_DN = "cn=admin,dc=mail";
export const ROOT_PASSWORD = "root-secret-for-tests";
export const BIND_DN = "cn=postmaster,ou=sendmail,dc=mail";
export const BIND_PASSWORD = "Tr0ub4dor&3 postmaster";
export const DOMAINS = ["example.org", "example.net"] as const;
/** mailLocalAddress values; jörg's is non-ASCII, to check the UTF-8 escaping end to end. */
export const ADDRESSES = [
  "alice@example.org",
  "bob@example.org",
  "postmaster@example.org",
  "jörg@example.org",
];
/** The `description` of some entries, for `result_attribute` tests. */
export const DESCRIPTIONS: Record<string, string> = {
  "alice@example.org": "mailbox alice on backend-1",
  "postmaster@example.org": "mailbox postmaster on backend-2",
};

/** 2.25.<a UUID as an integer>: a private OID arc needing no registration (ITU-T X.667). */
const OID_ARC = "2.25.333831126594755628086559673190072281021";

const SCHEMA = `# filterctl test schema: the two sendmail attributes, with substring matching.
attributetype ( ${OID_ARC}.1.1 NAME 'sendmailMTAClassValue'
  DESC 'a value of a sendmail class, e.g. a local domain'
  EQUALITY caseIgnoreMatch
  SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( ${OID_ARC}.1.2 NAME 'mailLocalAddress'
  DESC 'an address delivered here'
  EQUALITY caseIgnoreMatch
  SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( ${OID_ARC}.2.1 NAME 'filterctlMailEntry'
  DESC 'an entry holding local domains or addresses'
  SUP top STRUCTURAL
  MUST cn
  MAY ( sendmailMTAClassValue $ mailLocalAddress $ description ) )
`;

function ldifValue(attribute: string, value: string): string {
  return /^[\x20-\x7e]*$/.test(value) && !/^[ :<]/.test(value)
    ? `${attribute}: ${value}`
    : `${attribute}:: ${Buffer.from(value, "utf8").toString("base64")}`;
}

function dataLdif(): string {
  const entries: string[][] = [
    [`dn: ${SUFFIX}`, "objectClass: dcObject", "objectClass: organization", "dc: mail", "o: mail"],
    ["dn: ou=sendmail,dc=mail", "objectClass: organizationalUnit", "ou: sendmail"],
    [
      `dn: ${BIND_DN}`,
      "objectClass: organizationalRole",
      "objectClass: simpleSecurityObject",
      "cn: postmaster",
      ldifValue("userPassword", BIND_PASSWORD),
    ],
    [
      "dn: cn=local-domains,ou=sendmail,dc=mail",
      "objectClass: filterctlMailEntry",
      "cn: local-domains",
      ...DOMAINS.map((d) => ldifValue("sendmailMTAClassValue", d)),
      "description: our domains",
    ],
    ["dn: ou=people,dc=mail", "objectClass: organizationalUnit", "ou: people"],
  ];
  ADDRESSES.forEach((address, i) => {
    const entry = [
      `dn: cn=mailbox-${i + 1},ou=people,dc=mail`,
      "objectClass: filterctlMailEntry",
      `cn: mailbox-${i + 1}`,
      ldifValue("mailLocalAddress", address),
    ];
    const description = DESCRIPTIONS[address];
    if (description !== undefined) entry.push(ldifValue("description", description));
    entries.push(entry);
  });
  return `${entries.map((lines) => lines.join("\n")).join("\n\n")}\n`;
}

function slapdConf(dir: string, tls: boolean): string {
  return `# private slapd for filterctl tests
include /etc/ldap/schema/core.schema
include ${dir}/filterctl-test.schema
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
${tls ? `TLSCertificateFile ${dir}/cert.pem\nTLSCertificateKeyFile ${dir}/key.pem\n` : ""}
database config
access to * by * none

database mdb
maxsize 16777216
suffix "${SUFFIX}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PASSWORD}
directory ${dir}/db
index objectClass eq
index sendmailMTAClassValue,mailLocalAddress eq,sub
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="${BIND_DN}" read
  by * none
`;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** slapd instances still running when the test process exits are killed (by their PID). */
const running = new Set<Slapd>();
process.once("exit", () => {
  for (const slapd of running) slapd.killNow();
});

export interface SlapdOptions {
  /** Also listen on ldaps:// (and allow StartTLS on ldap://) with a self-signed certificate for 127.0.0.1. */
  tls?: boolean;
}

export class Slapd {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private pid = 0;

  private constructor(
    readonly dir: string,
    readonly port: number,
    /** ldaps:// port, 0 without TLS. */
    readonly tlsPort: number,
    /** PEM of the self-signed server certificate (to pass as `ca`), "" without TLS. */
    readonly certificate: string,
  ) {}

  get url(): string {
    return `ldap://127.0.0.1:${this.port}`;
  }

  get ldapsUrl(): string {
    return `ldaps://127.0.0.1:${this.tlsPort}`;
  }

  /** slapd's PID (from its pidfile) while it runs, else 0. */
  get processId(): number {
    return this.isRunning ? this.pid : 0;
  }

  get isRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  static async start(options: SlapdOptions = {}): Promise<Slapd> {
    const dir = await mkdtemp(join(tmpdir(), "filterctl-slapd-"));
    try {
      await mkdir(join(dir, "db"));
      await mkdir(join(dir, "slapd.d"));
      await writeFile(join(dir, "filterctl-test.schema"), SCHEMA);
      await writeFile(join(dir, "data.ldif"), dataLdif());
      let certificate = "";
      if (options.tls) {
        await run("/usr/bin/openssl", [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-keyout",
          join(dir, "key.pem"),
          "-out",
          join(dir, "cert.pem"),
          "-days",
          "2",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
        ]);
        certificate = await readFile(join(dir, "cert.pem"), "utf8");
      }
      const conf = join(dir, "slapd.conf");
      await writeFile(conf, slapdConf(dir, options.tls === true));
      await run("/usr/sbin/slapadd", ["-q", "-f", conf, "-l", join(dir, "data.ldif")]);
      await run("/usr/sbin/slaptest", ["-Q", "-f", conf, "-F", join(dir, "slapd.d")]);
      // A free port can be taken by someone else before slapd binds it: try a few.
      let lastError: unknown;
      for (let attempt = 0; attempt < 5; attempt++) {
        const slapd = new Slapd(dir, await freePort(), options.tls ? await freePort() : 0, certificate);
        try {
          await slapd.launch();
          return slapd;
        } catch (error) {
          lastError = error;
          await slapd.kill();
        }
      }
      throw lastError;
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Starts slapd on this instance's port(s) and data, and waits until it answers a bound search. */
  private async launch(): Promise<void> {
    if (this.isRunning) throw new Error("slapd is already running");
    const urls = [`ldap://127.0.0.1:${this.port}/`];
    if (this.tlsPort !== 0) urls.push(`ldaps://127.0.0.1:${this.tlsPort}/`);
    const log = openSync(join(this.dir, "slapd.log"), "a");
    const child = spawn(
      "/usr/sbin/slapd",
      ["-d", "0", "-F", join(this.dir, "slapd.d"), "-h", urls.join(" ")],
      {
        stdio: ["ignore", log, log],
      },
    );
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolveExit) => {
      if (child.exitCode !== null || child.signalCode !== null) resolveExit();
      else child.once("exit", () => resolveExit());
    });
    child.once("error", () => {});
    running.add(this);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (!this.isRunning) {
        running.delete(this);
        throw new Error(`slapd exited at start (${this.tail()})`);
      }
      if (await this.answers()) break;
      if (Date.now() > deadline) throw new Error(`slapd did not answer within 15 s (${this.tail()})`);
      await sleep(50);
    }
    const pid = Number(readFileSync(join(this.dir, "slapd.pid"), "utf8").trim());
    if (pid !== child.pid) throw new Error(`slapd's pidfile says ${pid}, our child is ${child.pid}`);
    this.pid = pid;
    child.once("exit", () => running.delete(this));
  }

  private tail(): string {
    try {
      return readFileSync(join(this.dir, "slapd.log"), "utf8").trim().split("\n").slice(-5).join(" | ");
    } catch {
      return "no log";
    }
  }

  /** Does slapd answer a bound search now? */
  private async answers(): Promise<boolean> {
    const client = new Client({ url: this.url, timeout: 1000, connectTimeout: 1000 });
    try {
      await client.bind(ROOT_DN, ROOT_PASSWORD);
      await client.search(SUFFIX, { scope: "base" });
      return true;
    } catch {
      return false;
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  private signal(signal: NodeJS.Signals): void {
    if (!this.isRunning || this.pid === 0) return;
    process.kill(this.pid, signal);
  }

  /** SIGTERM and wait (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    if (!this.isRunning) return;
    this.signal("SIGCONT");
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGKILL (a crash: no clean shutdown), and wait until it is gone. */
  async kill(): Promise<void> {
    if (!this.isRunning) return;
    if (this.pid === 0) this.child?.kill("SIGKILL");
    else this.signal("SIGKILL");
    await this.exited;
  }

  /** Synchronous last resort (process exit). */
  killNow(): void {
    try {
      if (this.pid !== 0) this.signal("SIGKILL");
      else this.child?.kill("SIGKILL");
    } catch {}
  }

  /** Starts again on the same port(s) and data (stopping first if it runs). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** SIGSTOP: slapd stays connected but answers nothing (the kernel still accepts connections). */
  /** Stops slapd (SIGSTOP) and waits until every one of its threads is stopped: a signal is asynchronous. */
  async freeze(): Promise<void> {
    this.signal("SIGSTOP");
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      if (this.allThreadsStopped()) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error("slapd did not stop within 2 s of SIGSTOP");
  }

  private allThreadsStopped(): boolean {
    try {
      const tasks = readdirSync(`/proc/${this.pid}/task`);
      return tasks.every((task) => {
        const stat = readFileSync(`/proc/${this.pid}/task/${task}/stat`, "utf8");
        // The state follows the command name, which is in parentheses.
        const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
        return state === "T" || state === "t";
      });
    } catch {
      return false;
    }
  }

  thaw(): void {
    this.signal("SIGCONT");
  }

  /** Stops slapd and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
