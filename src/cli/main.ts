/**
 * The `filterctl` command line. Exit codes: 0 success, 1 invalid configuration or input,
 * 2 usage error or unreadable file, 3 a DNSBL not healthy (dnsbl-status) or a lookup that failed
 * (lookup).
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { DRY_RUN_INPUTS } from "../dsl/registry.js";
import { parseHostPort } from "../engine/metrics-address.js";
import { EXIT_USAGE } from "../engine/open-rules.js";
import { ConfigError } from "../engine/service.js";
import { AddressError, ListenError, parseListenAddress } from "../milter/index.js";
import type { DryRunOptions } from "./dry-run.js";
import { createLogger, type LogFormat } from "./logging.js";
import type { ServeOptions } from "./serve.js";

function packageVersion(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  return (JSON.parse(text) as { version: string }).version;
}

function listenSpec(value: string): string {
  const parsed = parseListenAddress(value);
  if (parsed instanceof AddressError) throw new InvalidArgumentError(parsed.message);
  return value;
}

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError(`'${value}' is not a positive integer`);
  return Number(value);
}

const LOG_FORMAT = () =>
  new Option("--log-format <format>", "log lines as").choices(["json", "pretty"]).default("json");

interface ServeFlags {
  config?: string;
  listen?: string;
  metrics?: string;
  maxConnections?: number;
  shutdownTimeout?: number;
  journal?: string;
  workers?: number | "auto";
  logFormat: LogFormat;
}

function addServe(program: Command): void {
  program
    .command("serve")
    .description(
      "run the milter for Postfix or Sendmail with the rules of --config (reloaded on change and on SIGHUP); SIGTERM stops accepting, lets connections in flight finish, then exits 0",
    )
    .option(
      "--config <file>",
      "rules file (default: ./rules.yaml when it exists; without one, every message passes and each event is logged)",
    )
    .addOption(
      new Option(
        "--listen <socket>",
        "inet:PORT@HOST, inet:HOST:PORT, inet6:PORT@HOST or unix:/path (default: the file's listen, else inet:127.0.0.1:8890)",
      ).argParser(listenSpec),
    )
    .option("--metrics <host:port>", "serve Prometheus metrics at http://HOST:PORT/metrics")
    .addOption(
      new Option(
        "--max-connections <n>",
        "concurrent MTA connections (default: the file's max_connections, 4096)",
      ).argParser(positiveInteger),
    )
    .addOption(
      new Option(
        "--shutdown-timeout <seconds>",
        "how long SIGTERM waits for connections in flight (default: the file's shutdown_timeout, 30)",
      ).argParser(positiveInteger),
    )
    .option(
      "--journal <file>",
      "append one JSON line per finished transaction, for `filterctl replay` (wins over the file's journal.path)",
    )
    .addOption(
      new Option(
        "--workers <n|auto>",
        "processes serving the one socket; auto = one per core (default: the file's workers, 1)",
      ).argParser((value: string) => (value === "auto" ? "auto" : positiveInteger(value))),
    )
    .addOption(LOG_FORMAT())
    .action(serveAction);
}

async function serveAction(opts: ServeFlags): Promise<void> {
  if (opts.metrics !== undefined && parseHostPort(opts.metrics) === undefined) {
    process.stderr.write(`filterctl: --metrics '${opts.metrics}': expected HOST:PORT, e.g. 127.0.0.1:9890\n`);
    process.exit(EXIT_USAGE);
  }
  const logger = createLogger(opts.logFormat);
  const options: ServeOptions = {};
  if (opts.config !== undefined) options.config = opts.config;
  if (opts.listen !== undefined) options.listen = opts.listen;
  if (opts.metrics !== undefined) options.metrics = opts.metrics;
  if (opts.maxConnections !== undefined) options.maxConnections = opts.maxConnections;
  if (opts.shutdownTimeout !== undefined) options.shutdownTimeoutMs = opts.shutdownTimeout * 1000;
  if (opts.journal !== undefined) options.journal = opts.journal;
  if (opts.workers !== undefined) options.workers = opts.workers;
  try {
    const { serve } = await import("./serve.js");
    await serve(options, logger);
  } catch (error) {
    if (error instanceof ListenError || error instanceof ConfigError) {
      process.stderr.write(`filterctl: ${error.message}\n`);
      logger.flush(() => process.exit(error instanceof ConfigError ? error.exitCode : EXIT_USAGE));
      return;
    }
    throw error;
  }
}

function addValidate(program: Command): void {
  program
    .command("validate")
    .description(
      "parse, schema-check, type-check and compile the rules; print every error and warning (exit 0 valid, 1 invalid)",
    )
    .option("--config <file>", "rules file", "./rules.yaml")
    .option("--json", "print {ok, diagnostics} as JSON", false)
    .action(async (opts: { config: string; json: boolean }) => {
      const { validateCommand } = await import("./validate.js");
      process.exitCode = await validateCommand(opts);
    });
}

/** The options that fill the transaction dry-run runs: one block, in the order --help lists them. */
/** The transaction's options: one per value of the rule language that dry-run fills (the registry's), and --message. */
function addDryRunInput(command: Command): Command {
  for (const input of DRY_RUN_INPUTS) {
    const option = new Option(input.flags, input.help).makeOptionMandatory(input.required === true);
    if (input.repeatable === true) option.argParser(collect);
    if (input.bytes === true) option.argParser(nonNegativeInteger);
    command.addOption(option);
  }
  return command.option("--message <file.eml>", "headers and body from a message file");
}

function addDryRun(program: Command): void {
  const command = program
    .command("dry-run")
    .description(
      "run one SMTP transaction through the rules with the live sources and print each stage, rule, lookup and reply (exit 0 whatever the decision)",
    )
    .option("--config <file>", "rules file", "./rules.yaml");
  addDryRunInput(command)
    .option("--json", "print the report as JSON", false)
    .action(async (opts: DryRunOptions) => {
      const { dryRunCommand } = await import("./dry-run.js");
      process.exitCode = await dryRunCommand(opts);
    });
}

function addDnsblStatus(program: Command): void {
  program
    .command("dnsbl-status")
    .description(
      "probe every configured DNSBL now and print its health (exit 0 all healthy, 3 any not healthy, 1 invalid config, 2 unreadable file)",
    )
    .option("--config <file>", "rules file", "./rules.yaml")
    .option("--json", 'print {"lists": [{source, zone, state, detail}]} as JSON', false)
    .action(async (opts: { config: string; json: boolean }) => {
      const { dnsblStatusCommand } = await import("./dnsbl-status.js");
      process.exitCode = await dnsblStatusCommand(opts);
    });
}

function addLookup(program: Command): void {
  program
    .command("lookup")
    .description(
      "ask one source, live, what a rule would (like postmap -q): a table's value, a mailbox's quota, a DNSBL's listing and health (exit 0 answered, found or not; 1 invalid config or unknown source/table; 3 the lookup failed; 2 usage error)",
    )
    .argument("<source>", "a source of the rules file, SOURCE.TABLE for an LDAP source's table")
    .argument("<key>", "what a rule would look up: an address, a domain, an IP")
    .option("--config <file>", "rules file", "./rules.yaml")
    .option("--json", "print the answer as JSON", false)
    .action(async (source: string, key: string, opts: { config: string; json: boolean }) => {
      const { lookupCommand } = await import("./lookup.js");
      process.exitCode = await lookupCommand(source, key, opts);
    });
}

function addTest(program: Command): void {
  program
    .command("test")
    .description(
      "run test files: cases (a transaction and what the rules must answer) against the rules file each names, sources answering from the data the file stubs (the others asked live, unless --offline); prints ok/FAIL per case, then N passed, M failed (exit 0 all passed; 1 a case failed or a file is invalid; 2 usage error or unreadable file)",
    )
    .argument("<file...>", "test files (YAML: rules, sources, cases)")
    .option("--junit <out.xml>", "also write the results as JUnit XML (for CI systems)")
    .option(
      "--offline",
      "ask no live source: every source the rules look up must be stubbed (lists excepted)",
      false,
    )
    .action(async (files: string[], opts: { junit?: string; offline: boolean }) => {
      const { testCommand } = await import("./test.js");
      process.exitCode = await testCommand(files, opts);
    });
}

function addReplay(program: Command): void {
  program
    .command("replay")
    .description(
      "run journalled transactions (serve --journal) through candidate rules and print those whose outcome changes, grouped by change (exit 0 whatever changed, 1 invalid candidate, 2 unreadable journal)",
    )
    .argument("<journal...>", "journal files (FILE, FILE.1, ...)")
    .option("--config <file>", "the candidate rules file", "./rules.yaml")
    .option("--json", "print {groups, totals, skipped, askedLive} as JSON", false)
    .option("--live", "ask every lookup of the live sources instead of the journal", false)
    .action(async (journals: string[], opts: { config: string; json: boolean; live: boolean }) => {
      const { replayCommand } = await import("./replay.js");
      process.exitCode = await replayCommand(journals, opts);
    });
}

function addQuotaServer(program: Command): void {
  program
    .command("quota-server")
    .description(
      "serve GET /quota?u=USER (and /cgi-bin/quota.cgi) from the maildir or mbox source named by quota_server.source; SIGTERM exits 0",
    )
    .option("--config <file>", "rules file", "./rules.yaml")
    .option(
      "--listen <host:port>",
      "address to listen on (default: quota_server.listen, else 127.0.0.1:8025)",
    )
    .addOption(LOG_FORMAT())
    .action(async (opts: { config: string; listen?: string; logFormat: LogFormat }) => {
      const { quotaServerCommand } = await import("./quota-server.js");
      const code = await quotaServerCommand(opts);
      if (code !== undefined) process.exitCode = code;
    });
}

function addLsp(program: Command): void {
  program
    .command("lsp")
    .description(
      "the language server for editors (LSP over stdin/stdout): validate's diagnostics as you type, completion, hover, go to definition of sources; no source is opened",
    )
    .option("--stdio", "talk over stdin/stdout (the only way; editors pass it)")
    .action(async () => {
      // Loaded only here: every other command starts without the language server's modules.
      const { lspCommand } = await import("./lsp.js");
      lspCommand();
    });
}

/** Hidden: prints filterctl(1) as roff from this very program (`npm run man` writes man/filterctl.1). */
function addMan(program: Command): void {
  program
    .command("man", { hidden: true })
    .description("print the man page filterctl(1) as roff")
    .action(async () => {
      const { renderMan } = await import("./man.js");
      process.stdout.write(renderMan(program));
    });
}

export function buildProgram(): Command {
  const program = new Command("filterctl")
    .description("A declarative mail filter for postmasters, served over the Sendmail milter protocol")
    .version(packageVersion(), "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "show help")
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`filterctl: ${text.replace(/^error: /, "")}`) });
  addServe(program);
  addValidate(program);
  addDryRun(program);
  addDnsblStatus(program);
  addLookup(program);
  addTest(program);
  addReplay(program);
  addQuotaServer(program);
  addLsp(program);
  addMan(program);
  return program;
}

function nonNegativeInteger(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError(`'${value}' is not a number of bytes`);
  return Number(value);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with code 0; every usage mistake is exit 2.
      process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    throw error;
  }
}

// bin/filterctl.js installs it before anything loads; this covers `node dist/cli/main.js` run
// directly. Without a SIGUSR1 listener Node opens its inspector on that signal.
if (process.listenerCount("SIGUSR1") === 0) process.on("SIGUSR1", () => {});

await main(process.argv);
