import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Diagnostic, formatDiagnostic, SourceFile } from "../../src/common/diagnostics.js";
import {
  ConfigReadError,
  DEFAULT_ERROR_REPLY,
  describeFailure,
  loadConfig,
  parseConfig,
  readConfigFile,
  referencedFiles,
  SCHEMA_URL,
} from "../../src/config/load.js";
import type { Config, LocatedText, RuleSource, SourceConfig } from "../../src/config/types.js";
import { SOURCE_CATALOG } from "../../src/sources/catalog.js";

const EXAMPLE = new URL("./fixtures/spec-example.yaml", import.meta.url).pathname;
const BIN = new URL("../../bin/filterctl.js", import.meta.url).pathname;

function parse(
  text: string,
  path = "rules.yaml",
): { config?: Config; diagnostics: Diagnostic[]; file: SourceFile } {
  const file = new SourceFile(path, text);
  return { file, ...parseConfig(file, { sourceTypes: SOURCE_CATALOG }) };
}

function valid(text: string): Config {
  const { config, diagnostics } = parse(text);
  expect(diagnostics.map(formatDiagnostic)).toEqual([]);
  if (config === undefined) throw new Error("no config");
  return config;
}

function source<T extends SourceConfig["type"]>(
  config: Config,
  name: string,
  type: T,
): Extract<SourceConfig, { type: T }> {
  const found = config.sources.get(name);
  expect(found?.type).toBe(type);
  return found as Extract<SourceConfig, { type: T }>;
}

/** `line:col` of a located text's first character. */
function where(file: SourceFile, located: LocatedText | undefined, index = 0): string {
  if (located === undefined) return "absent";
  const { line, column } = file.position(located.offsetAt(index));
  return `${line}:${column}`;
}

function pos(file: SourceFile, offset: number): string {
  const { line, column } = file.position(offset);
  return `${line}:${column}`;
}

describe("the specification's example", () => {
  const file = new SourceFile(EXAMPLE, readFileSync(EXAMPLE, "utf8"));
  const { config, diagnostics } = parseConfig(file, { sourceTypes: SOURCE_CATALOG });

  it("is valid", () => {
    expect(diagnostics).toEqual([]);
    expect(config).toBeDefined();
  });

  it("has every top-level field", () => {
    const c = config as Config;
    expect(c.file).toBe(file);
    expect(c.listen).toBe("inet:127.0.0.1:8890");
    expect(c.listenMode).toBe(0o660);
    expect(c.maxConnections).toBe(4096);
    expect(c.maxBufferedInput).toBe(64 * 1024 * 1024);
    expect(c.shutdownTimeoutMs).toBe(30_000);
    expect(c.eventTimeoutMs).toBe(10_000);
    expect(c.defaults).toEqual({
      onError: "tempfail",
      errorReply: DEFAULT_ERROR_REPLY,
      timeoutMs: 2000,
      localPart: "insensitive",
    });
    expect(c.dns).toEqual({ servers: ["127.0.0.1:53"] });
    expect(c.quotaServer).toBeUndefined();
    expect([...c.sources.keys()]).toEqual([
      "mailboxes",
      "spool",
      "backend",
      "directory",
      "spamhaus",
      "trusted",
    ]);
  });

  it("has every source, typed", () => {
    const c = config as Config;
    const common = { timeoutMs: 2000, onError: "tempfail" };
    expect(source(c, "mailboxes", "maildir")).toMatchObject({
      ...common,
      name: "mailboxes",
      path: "/var/mail/{user}/Maildir",
    });
    expect(source(c, "mailboxes", "maildir").quota).toBeUndefined();
    expect(source(c, "mailboxes", "maildir").cacheMs).toBeUndefined();
    expect(source(c, "mailboxes", "maildir").negativeCacheMs).toBeUndefined();
    expect(source(c, "mailboxes", "maildir").recipientDelimiter).toBeUndefined();
    expect(source(c, "spool", "mbox")).toMatchObject({
      ...common,
      path: "/var/mail/{user}",
      quota: { bytes: 200_000_000 },
    });
    expect(source(c, "backend", "http")).toMatchObject({
      ...common,
      url: "http://10.0.0.5:8025/quota?u={user}",
      cacheMs: 30_000,
    });
    const directory = source(c, "directory", "ldap");
    expect(directory).toMatchObject({
      ...common,
      url: "ldap://127.0.0.1:389",
      bindDn: "cn=postmaster,ou=sendmail,dc=mail",
      passwordFile: "/etc/filterctl/ldap.secret",
      base: "dc=mail",
      startTls: false,
      cacheMs: 300_000,
    });
    expect(directory.passwordEnv).toBeUndefined();
    expect(directory.resultAttribute).toBeUndefined();
    expect([...directory.tables.entries()].map(([k, v]) => [k, v.text, where(file, v)])).toEqual([
      ["local_domains", "(sendmailMTAClassValue={key})", "32:23"],
      ["addresses", "(mailLocalAddress={key})", "33:19"],
    ]);
    const addresses = directory.tables.get("addresses") as LocatedText;
    expect(where(file, addresses, addresses.text.indexOf("{key}"))).toBe("33:37");
    expect(source(c, "spamhaus", "dnsbl")).toMatchObject({
      timeoutMs: 2000,
      onError: "continue",
      zone: "zen.spamhaus.org",
      codes: ["127.0.0.2-127.0.0.11"],
      health: { intervalMs: 300_000, window: 50, maxListedRatio: 0.9, requirePositiveProbe: true },
    });
    expect(source(c, "trusted", "list")).toMatchObject({
      ...common,
      items: ["192.0.2.0/24", "postmaster@example.org"],
    });
    expect(source(c, "trusted", "list").file).toBeUndefined();
    expect([...c.sources.values()].map((s) => pos(file, s.offset))).toEqual([
      "13:3",
      "16:3",
      "20:3",
      "25:3",
      "35:3",
      "39:3",
    ]);
  });

  it("has the three rules, in every form, located", () => {
    const [quota, text, oneLine] = (config as Config).rules as [RuleSource, RuleSource, RuleSource];
    expect(quota.form).toBe("structured");
    if (quota.form !== "structured") return;
    expect(quota.index).toBe(0);
    expect(pos(file, quota.offset)).toBe("44:5");
    expect(quota.name?.text).toBe("backend-quota");
    expect(where(file, quota.name)).toBe("44:11");
    expect(quota.on.map((o) => [o.text, where(file, o)])).toEqual([["rcpt", "45:9"]]);
    expect(quota.if?.text).toBe("quota(rcpt, backend) over");
    expect(where(file, quota.if)).toBe("46:9");
    expect(quota.then.text).toBe('tempfail 452 4.2.2 "Quota exceeded for {rcpt}, try again later"');
    expect(where(file, quota.then)).toBe("47:11");
    expect(where(file, quota.then, quota.then.text.indexOf("{rcpt}"))).toBe("47:50");
    expect(quota.else).toBeUndefined();
    expect(quota.mode).toBe("enforce");

    expect(text.form).toBe("text");
    if (text.form !== "text") return;
    expect(text.index).toBe(1);
    expect(pos(file, text.offset)).toBe("48:5");
    expect(text.body.text).toBe(
      "on mail:\n" +
        "  if from.domain in directory.local_domains and from not in directory.addresses\n" +
        '  then reject 550 5.7.1 "Reject: your From address {from} does not exist."\n',
    );
    expect(where(file, text.body)).toBe("49:5");
    expect(where(file, text.body, text.body.text.indexOf("directory.addresses"))).toBe("50:65");
    expect(where(file, text.body, text.body.text.indexOf("then"))).toBe("51:7");

    expect(oneLine.form).toBe("text");
    if (oneLine.form !== "text") return;
    expect(oneLine.index).toBe(2);
    expect(oneLine.body.text).toBe(
      'on connect: if client.ip in spamhaus then reject 554 5.7.1 "{client.ip} listed by {spamhaus.zone}"',
    );
    expect(where(file, oneLine.body)).toBe("52:5");
    expect(where(file, oneLine.body, oneLine.body.text.indexOf(":"))).toBe("52:15");
    expect(where(file, oneLine.body, oneLine.body.text.indexOf("if"))).toBe("52:17");
    expect(where(file, oneLine.body, oneLine.body.text.indexOf("spamhaus"))).toBe("52:33");
  });

  it("finds nodes by path, or their nearest parent", () => {
    const c = config as Config;
    expect(pos(file, c.offsetOf(["sources", "spool", "quota"]))).toBe("19:12");
    expect(pos(file, c.offsetOf(["rules", 0, "then"]))).toBe("47:11");
    expect(pos(file, c.offsetOf(["dns", "servers", 0]))).toBe("10:13");
    expect(pos(file, c.offsetOf(["sources", "spool", "nothing", "here"]))).toBe("16:3");
    expect(pos(file, c.offsetOf([]))).toBe("2:1");
  });

  it("starts with the yaml-language-server comment pointing at the schema", () => {
    const first = readFileSync(EXAMPLE, "utf8").split("\n")[0] as string;
    const match = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
    expect(match).not.toBeNull();
    expect(resolve(dirname(EXAMPLE), match?.[1] as string)).toBe(SCHEMA_URL.pathname);
  });
});

describe("defaults", () => {
  it("applies every default to a minimal configuration", () => {
    const c = valid("rules: []\n");
    expect(c.listen).toBeUndefined();
    expect(c.listenMode).toBe(0o660);
    expect(c.maxConnections).toBe(4096);
    expect(c.shutdownTimeoutMs).toBe(30_000);
    expect(c.eventTimeoutMs).toBe(10_000);
    expect(c.defaults).toEqual({
      onError: "tempfail",
      errorReply: "451 4.3.0 Temporary lookup failure, try again later",
      timeoutMs: 2000,
      localPart: "insensitive",
    });
    expect(c.dns).toEqual({});
    expect(c.sources.size).toBe(0);
    expect(c.rules).toEqual([]);
    expect(c.quotaServer).toBeUndefined();
    expect(c.state).toEqual({ type: "memory", onError: "continue", timeoutMs: 200 });
    expect(c.greylist).toEqual({ delayMs: 300_000, retryWindowMs: 172_800_000, passTtlMs: 3_024_000_000 });
  });

  it("state: redis with every option; greylist settings", () => {
    const c = valid(
      [
        "state:",
        "  type: redis",
        '  urls: ["redis://10.0.0.1:26379", "rediss://user:pw@10.0.0.2:26379/2"]',
        "  sentinel: mymaster",
        '  key_prefix: "mx:"',
        "  timeout: 50ms",
        "  on_error: tempfail",
        "greylist: {delay: 1m, retry_window: 4h, pass_ttl: 7d}",
        "rules: []",
        "",
      ].join("\n"),
    );
    expect(c.state).toEqual({
      type: "redis",
      urls: ["redis://10.0.0.1:26379", "rediss://user:pw@10.0.0.2:26379/2"],
      sentinel: "mymaster",
      keyPrefix: "mx:",
      timeoutMs: 50,
      onError: "tempfail",
    });
    expect(c.greylist).toEqual({ delayMs: 60_000, retryWindowMs: 14_400_000, passTtlMs: 604_800_000 });
    const cluster = valid('state: {type: redis, url: "redis://127.0.0.1:7000", cluster: true}\nrules: []\n');
    expect(cluster.state).toMatchObject({
      urls: ["redis://127.0.0.1:7000"],
      cluster: true,
      keyPrefix: "filterctl:",
    });
  });

  it("a configuration of sources only (a back-end quota server) needs no rules", () => {
    const c = valid(
      "sources:\n  mailboxes:\n    type: maildir\n    path: /var/mail/{user}/Maildir\nquota_server:\n  source: mailboxes\n",
    );
    expect(c.rules).toEqual([]);
    expect(c.quotaServer?.listen).toBe("127.0.0.1:8025");
    expect(c.quotaServer?.source).toBe("mailboxes");
    expect(pos(c.file, c.quotaServer?.offset as number)).toBe("6:11");
  });

  it("sources take defaults.timeout and defaults.on_error, DNSBLs continue", () => {
    const c = valid(`defaults:
  on_error: continue
  timeout: 750ms
  error_reply: "451 4.3.5 Directory down"
  local_part: sensitive
sources:
  a:
    type: http
    url: http://quota/{user}
  b:
    type: dnsbl
    zone: bl.example
  c:
    type: http
    url: http://quota/{address}
    timeout: 1.5s
    on_error: tempfail
  d:
    type: dnsbl
    zone: bl.example.
    on_error: tempfail
`);
    expect(c.defaults).toEqual({
      onError: "continue",
      timeoutMs: 750,
      errorReply: "451 4.3.5 Directory down",
      localPart: "sensitive",
    });
    expect(source(c, "a", "http")).toMatchObject({
      timeoutMs: 750,
      onError: "continue",
      localPart: "sensitive",
    });
    expect(source(c, "b", "dnsbl")).toMatchObject({ timeoutMs: 750, onError: "continue" });
    expect(source(c, "c", "http")).toMatchObject({ timeoutMs: 1500, onError: "tempfail" });
    expect(source(c, "d", "dnsbl")).toMatchObject({ onError: "tempfail", zone: "bl.example" });
    const tempfailDefaults = valid("sources:\n  b:\n    type: dnsbl\n    zone: bl.example\n");
    expect(source(tempfailDefaults, "b", "dnsbl").onError).toBe("continue");
    expect(source(tempfailDefaults, "b", "dnsbl").localPart).toBe("insensitive");
  });

  it("DNSBL health: defaults, and every option set", () => {
    const c = valid(`sources:
  a:
    type: dnsbl
    zone: a.example
    health: {}
  b:
    type: dnsbl
    zone: b.example
    health:
      interval: 1h
      window: 200
      max_listed_ratio: 0.5
      require_positive_probe: false
`);
    expect(source(c, "a", "dnsbl").health).toEqual({
      intervalMs: 300_000,
      window: 50,
      maxListedRatio: 0.9,
      requirePositiveProbe: true,
    });
    expect(source(c, "a", "dnsbl").codes).toBeUndefined();
    expect(source(c, "b", "dnsbl").health).toEqual({
      intervalMs: 3_600_000,
      window: 200,
      maxListedRatio: 0.5,
      requirePositiveProbe: false,
    });
  });
});

describe("values", () => {
  it("listen_mode: quoted, unquoted (YAML's 660), 0o octal", () => {
    expect(valid('listen_mode: "0600"\n').listenMode).toBe(0o600);
    expect(valid("listen_mode: 0664\n").listenMode).toBe(0o664);
    expect(valid("listen_mode: 660\n").listenMode).toBe(0o660);
    expect(valid("listen_mode: 0o640\n").listenMode).toBe(0o640);
    expect(parse("listen_mode: 0999\n").diagnostics.map(formatDiagnostic)).toEqual([
      `rules.yaml:1:14: error: 'listen_mode' must be an octal file mode like "0660"`,
    ]);
  });

  it("listen_mode: world-writable is a warning on the value, with a mode to use instead", () => {
    const cases: [string, string][] = [
      ['"0666"', "0660"],
      ["0777", "0770"],
      ["0o602", "0600"],
      ['"002"', "0660"],
    ];
    for (const [text, safer] of cases) {
      const parsed = parse(`listen: "unix:/run/f.sock"\nlisten_mode: ${text}\n`);
      expect(parsed.config?.listenMode).toBe(Number.parseInt(text.replace(/"|0o/g, ""), 8));
      expect(parsed.diagnostics.map(formatDiagnostic)).toEqual([
        `rules.yaml:2:14: warning: listen_mode "${text.replace(/"/g, "")}" lets every local user connect to the milter socket (use "${safer}" and add the MTA's user to the socket's group)`,
      ]);
    }
    expect(valid('listen_mode: "0664"\n').listenMode).toBe(0o664);
  });

  it("top-level numbers and durations", () => {
    const c = valid("max_connections: 10\nshutdown_timeout: 2m\nevent_timeout: 1500ms\n");
    expect(c.maxConnections).toBe(10);
    expect(c.shutdownTimeoutMs).toBe(120_000);
    expect(c.eventTimeoutMs).toBe(1500);
  });

  it("max_buffered_input: a size, 64MiB by default, at least 1MiB", () => {
    expect(valid('listen_mode: "0600"\n').maxBufferedInput).toBe(64 * 1024 * 1024);
    expect(valid("max_buffered_input: 8MiB\n").maxBufferedInput).toBe(8 * 1024 * 1024);
    expect(valid("max_buffered_input: 2000000\n").maxBufferedInput).toBe(2_000_000);
    expect(parse("max_buffered_input: 64KiB\n").diagnostics.map(formatDiagnostic)).toEqual([
      "rules.yaml:1:21: error: 'max_buffered_input' must be at least 1MiB (the largest packet the milter accepts)",
    ]);
    expect(parse("max_buffered_input: lots\n").diagnostics).not.toEqual([]);
  });

  it("every listen notation", () => {
    for (const listen of [
      "inet:8890@127.0.0.1",
      "inet:127.0.0.1:8890",
      "inet6:8890@::1",
      "unix:/run/f.sock",
      "local:/x",
    ]) {
      expect(valid(`listen: "${listen}"\n`).listen).toBe(listen);
    }
  });

  it("sizes, durations and quota limits", () => {
    const c = valid(`sources:
  a:
    type: mbox
    path: /var/mail/{user}
    quota: 200MiB
    cache: 1d
    negative_cache: 0s
    recipient_delimiter: "+"
  b:
    type: mbox
    path: /var/mail/{user}
    quota: 1048576
  c:
    type: maildir
    path: /home/{user}/Maildir
    quota: {bytes: 1.5GB, messages: 10000}
  d:
    type: maildir
    path: /home/{user}/Maildir
    quota:
      messages: 500
`);
    expect(source(c, "a", "mbox")).toMatchObject({
      quota: { bytes: 200 * 2 ** 20 },
      cacheMs: 86_400_000,
      negativeCacheMs: 0,
      recipientDelimiter: "+",
    });
    expect(source(c, "b", "mbox").quota).toEqual({ bytes: 1_048_576 });
    expect(source(c, "c", "maildir").quota).toEqual({ bytes: 1_500_000_000, messages: 10_000 });
    expect(source(c, "d", "maildir").quota).toEqual({ messages: 500 });
  });

  it("LDAP options", () => {
    const c = valid(`sources:
  dir:
    type: ldap
    url: ldaps://ldap.example.org
    bind_dn: cn=filter,dc=example
    password_env: LDAP_PASSWORD
    base: dc=example
    start_tls: true
    result_attribute: mailRoutingAddress
    tables:
      routes: >-
        (&(objectClass=inetLocalMailRecipient)
        (mailLocalAddress={key}))
`);
    const dir = source(c, "dir", "ldap");
    expect(dir).toMatchObject({
      url: "ldaps://ldap.example.org",
      bindDn: "cn=filter,dc=example",
      passwordEnv: "LDAP_PASSWORD",
      startTls: true,
      resultAttribute: "mailRoutingAddress",
    });
    expect(dir.passwordFile).toBeUndefined();
    const routes = dir.tables.get("routes") as LocatedText;
    expect(routes.text).toBe("(&(objectClass=inetLocalMailRecipient) (mailLocalAddress={key}))");
    expect(where(c.file, routes)).toBe("12:9");
    expect(where(c.file, routes, routes.text.indexOf("(mail"))).toBe("13:9");
  });

  it("list sources: items, or a file relative to the configuration's folder", () => {
    const { config } = parse(
      "sources:\n  t:\n    type: list\n    file: lists/trusted.txt\n",
      "/etc/filterctl/rules.yaml",
    );
    expect(source(config as Config, "t", "list").file).toBe("/etc/filterctl/lists/trusted.txt");
    expect(source(config as Config, "t", "list").items).toBeUndefined();
    const absolute = parse("sources:\n  t:\n    type: list\n    file: /srv/t.txt\n", "rules.yaml")
      .config as Config;
    expect(source(absolute, "t", "list").file).toBe("/srv/t.txt");
    expect(referencedFiles(absolute)).toEqual(["/srv/t.txt"]);
  });

  it("warns about a mailbox path every recipient would share", () => {
    const { config, diagnostics } = parse(
      "sources:\n  s:\n    type: mbox\n    path: /var/mail/all\n    quota: 1GB\n",
    );
    expect(config).toBeDefined();
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      "rules.yaml:4:11: warning: 'path' of source 's' has no {user} or {address}: every recipient shares one mailbox",
    ]);
  });

  it("YAML anchors and aliases work (within bounds)", () => {
    const c = valid(`sources:
  a: &quota
    type: http
    url: http://one/{user}
    timeout: 3s
  b: *quota
`);
    expect(source(c, "b", "http")).toMatchObject({ url: "http://one/{user}", timeoutMs: 3000 });
  });

  it("x- keys hold anchors, and <<: merges them into sources", () => {
    const c = valid(`x-common: &common
  timeout: 3s
  on_error: continue
sources:
  a:
    <<: *common
    type: http
    url: http://one/{user}
  b:
    <<: *common
    type: http
    url: http://two/{user}
    timeout: 1s
`);
    expect(source(c, "a", "http")).toMatchObject({ timeoutMs: 3000, onError: "continue" });
    expect(source(c, "b", "http")).toMatchObject({ timeoutMs: 1000, onError: "continue" });
  });

  it("keeps YAML warnings as warnings", () => {
    const { config, diagnostics } = parse("listen: !socket inet:8890@127.0.0.1\n");
    expect(config?.listen).toBe("inet:8890@127.0.0.1");
    expect(diagnostics.map(formatDiagnostic)).toEqual(["rules.yaml:1:9: warning: unknown YAML tag: !socket"]);
  });
});

describe("rules", () => {
  function rules(text: string): { rules: RuleSource[]; file: SourceFile } {
    const c = valid(text);
    return { rules: c.rules, file: c.file };
  }

  it("on: one stage, a comma list in a string, a YAML list", () => {
    const {
      rules: [a, b, c],
      file,
    } = rules(`rules:
  - on: rcpt
    then: continue
  - on: "mail, rcpt"
    then: continue
  - on: [mail, rcpt, eom]
    then: continue
`) as { rules: RuleSource[]; file: SourceFile };
    const stages = (rule: RuleSource | undefined) =>
      rule?.form === "structured" ? rule.on.map((o) => `${o.text}@${where(file, o)}`) : [];
    expect(stages(a)).toEqual(["rcpt@2:9"]);
    expect(stages(b)).toEqual(["mail@4:10", "rcpt@4:16"]);
    expect(stages(c)).toEqual(["mail@6:10", "rcpt@6:16", "eom@6:22"]);
  });

  it("structured rules: else, shadow mode, default mode", () => {
    const {
      rules: [a, b],
      file,
    } = rules(`rules:
  - name: try
    on: rcpt
    if: rcpt.domain == "example.org"
    then: reject
    else: accept
    mode: shadow
  - on: eom
    then: 'add header "X-Checked" "yes"'
`) as { rules: RuleSource[]; file: SourceFile };
    expect(a?.form === "structured" && a.mode).toBe("shadow");
    expect(a?.form === "structured" && a.else?.text).toBe("accept");
    expect(a?.form === "structured" && where(file, a.else)).toBe("6:11");
    expect(b?.form === "structured" && b.mode).toBe("enforce");
    expect(b?.form === "structured" && b.name).toBeUndefined();
    expect(b?.form === "structured" && b.if).toBeUndefined();
    expect(b?.form === "structured" && b.then.text).toBe('add header "X-Checked" "yes"');
    expect(b?.form === "structured" && where(file, b.then)).toBe("9:12");
  });

  it("text rules: quoted, block, and one-line 'on X: ...' read by YAML as a mapping, with shadow", () => {
    const { rules: list, file } = rules(`rules:
  - "on rcpt: if quota(rcpt) over then tempfail 452 4.2.2"
  - shadow on mail, rcpt: if from == "" then continue
  - >-
    on helo:
      if helo == "localhost"
      then reject
  - on eom: |
      if size > 10MB
      then reject
`);
    const bodies = list.map((r) => (r.form === "text" ? r.body : undefined)) as LocatedText[];
    expect(bodies.map((b) => b.text)).toEqual([
      "on rcpt: if quota(rcpt) over then tempfail 452 4.2.2",
      'shadow on mail, rcpt: if from == "" then continue',
      'on helo:\n  if helo == "localhost"\n  then reject',
      "on eom: if size > 10MB\nthen reject\n",
    ]);
    expect(bodies.map((b) => where(file, b))).toEqual(["2:6", "3:5", "5:5", "8:5"]);
    expect(where(file, bodies[1], bodies[1]?.text.indexOf("if"))).toBe("3:27");
    expect(where(file, bodies[3], bodies[3]?.text.indexOf("if"))).toBe("9:7");
    expect(where(file, bodies[3], bodies[3]?.text.indexOf("then"))).toBe("10:7");
    expect(list.map((r) => pos(file, r.offset))).toEqual(["2:5", "3:5", "4:5", "8:5"]);
    expect(list.map((r) => r.index)).toEqual([0, 1, 2, 3]);
  });
});

describe("readConfigFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "filterctl-read-"));
  afterAll(() => {
    chmodSync(join(dir, "secret.yaml"), 0o600);
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, "ok.yaml"), "rules: []\n");
  writeFileSync(join(dir, "secret.yaml"), "rules: []\n");
  chmodSync(join(dir, "secret.yaml"), 0o000);
  mkdirSync(join(dir, "folder.yaml"));
  writeFileSync(join(dir, "latin1.yaml"), Buffer.from("rules: []\n# caf\xe9\n", "latin1"));

  it("reads a file", async () => {
    const file = await readConfigFile(join(dir, "ok.yaml"));
    expect(file.text).toBe("rules: []\n");
    expect(file.path).toBe(join(dir, "ok.yaml"));
    const loaded = await loadConfig(join(dir, "ok.yaml"), { sourceTypes: SOURCE_CATALOG });
    expect(loaded.config?.rules).toEqual([]);
    expect(loaded.diagnostics).toEqual([]);
  });

  async function failure(path: string): Promise<ConfigReadError> {
    const error = await readConfigFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigReadError);
    return error as ConfigReadError;
  }

  it("a missing file", async () => {
    const path = join(dir, "missing.yaml");
    expect((await failure(path)).message).toBe(`${path}: no such file`);
  });

  it("a folder", async () => {
    const path = join(dir, "folder.yaml");
    expect((await failure(path)).message).toBe(`${path}: is a folder, not a regular file`);
  });

  it("a file that may not be read", async () => {
    const path = join(dir, "secret.yaml");
    if (process.getuid?.() !== 0) {
      expect((await failure(path)).message).toBe(`${path}: permission denied`);
      return;
    }
    // root reads any file: ask as an unprivileged user, through the real command line.
    chmodSync(dir, 0o755);
    const result = spawnSync(process.execPath, [BIN, "validate", "--config", path], {
      encoding: "utf8",
      uid: 65534,
      gid: 65534,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${path}: permission denied`);
  });

  it("permission denied, and other failures, in words", () => {
    const denied = describeFailure("/etc/r.yaml", Object.assign(new Error("x"), { code: "EACCES" }));
    expect(denied).toBeInstanceOf(ConfigReadError);
    expect(denied.message).toBe("/etc/r.yaml: permission denied");
    expect(denied.code).toBe("EACCES");
    expect(describeFailure("r.yaml", Object.assign(new Error("I/O error"), { code: "EIO" })).message).toBe(
      "r.yaml: cannot read: I/O error",
    );
  });

  it("a file that is not UTF-8", async () => {
    const path = join(dir, "latin1.yaml");
    expect((await failure(path)).message).toBe(`${path}:2:6: not UTF-8 text (save the file as UTF-8)`);
  });

  it("a device or FIFO is not a configuration", async () => {
    expect((await failure("/dev/null")).message).toBe("/dev/null: is a character device, not a regular file");
  });
});
