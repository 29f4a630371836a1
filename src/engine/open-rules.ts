/**
 * The one way every command opens a rules file: read, check and compile it (load-rules.ts),
 * then open its sources through the SourceRegistry. A failure is a value that says which kind
 * it is, and each kind has one exit code, whatever the command.
 */
import { type Diagnostic, hasErrors, SourceFile } from "../common/diagnostics.js";
import { STAGES, type Stage } from "../common/stages.js";
import { parseConfig, readConfigFile } from "../config/load.js";
import type { Config, SourceConfig } from "../config/types.js";
import { parseReply } from "../dsl/compiler.js";
import type { Decision } from "../runtime/model.js";
import type { Ruleset } from "../runtime/ruleset.js";
import { SOURCE_CATALOG } from "../sources/catalog.js";
import { type RegistryOptions, SourceRegistry } from "../sources/registry.js";
import { loadRules, loadRulesText } from "./load-rules.js";

/**
 * Exit codes, for every command: 0 success; 1 the configuration or the input is invalid
 * (a source that cannot be opened is a configuration problem: an unset password variable, a bad
 * URL); 2 a usage error or an unreadable file. `dnsbl-status` adds 3: a list is not healthy.
 */
export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

/** Rules that passed every check and compiled. */
export interface CheckedRules {
  kind: "checked";
  file: SourceFile;
  config: Config;
  ruleset: Ruleset;
  /** Warnings only. */
  diagnostics: Diagnostic[];
}

/** Checked rules with their sources open; the caller closes `registry`. */
export interface OpenedRules extends Omit<CheckedRules, "kind"> {
  kind: "opened";
  registry: SourceRegistry;
}

export type OpenFailure =
  /** The rules file cannot be read (missing, a directory, too large…): exit 2. */
  | { kind: "unreadable"; message: string }
  /** The file has errors (`diagnostics` has them, warnings too): exit 1. */
  | { kind: "invalid"; file: SourceFile; diagnostics: Diagnostic[] }
  /** A source cannot be opened: exit 1. `diagnostics`: the file's warnings. */
  | { kind: "sources"; file: SourceFile; message: string; diagnostics: Diagnostic[] };

export function exitCodeOf(failure: OpenFailure): number {
  return failure.kind === "unreadable" ? EXIT_USAGE : EXIT_INVALID;
}

export interface OpenOptions {
  /** The files the configuration names are about to be read (serve): missing is an error too. */
  mustRead?: boolean;
  /**
   * The rules file's content, already read (a `--workers` worker gets what its primary
   * validated): used instead of reading the file again, which may have changed since.
   */
  text?: string;
  /** Which sources to open; default every one. */
  only?: (source: SourceConfig) => boolean;
  /** How sources are built and observed; default: the real factories, no logger. */
  registry?: RegistryOptions;
}

/** Reads (unless `text` is the file's content already read), checks and compiles; no source is opened. */
export async function checkRules(
  path: string,
  mustRead = false,
  text?: string,
): Promise<CheckedRules | OpenFailure> {
  const loaded =
    text === undefined
      ? await loadRules(path, mustRead)
      : await loadRulesText(new SourceFile(path, text), mustRead);
  if (loaded.kind === "unreadable") return loaded;
  const { file, config, ruleset, diagnostics } = loaded;
  if (config === undefined || ruleset === undefined || hasErrors(diagnostics))
    return { kind: "invalid", file, diagnostics };
  return { kind: "checked", file, config, ruleset, diagnostics };
}

/**
 * The file's `workers:` setting, from the configuration alone (the rules are not compiled):
 * `serve` asks it before loading, and a file that cannot be read or parsed answers undefined
 * (loading it then reports why).
 */
export async function workersSetting(path: string): Promise<Config["workers"] | undefined> {
  try {
    return parseConfig(await readConfigFile(path), { sourceTypes: SOURCE_CATALOG }).config?.workers;
  } catch {
    return undefined;
  }
}

/** Opens the sources of checked rules (those `only` picks). */
export async function openSources(
  checked: CheckedRules,
  options: Omit<OpenOptions, "mustRead"> = {},
): Promise<OpenedRules | OpenFailure> {
  const { config, file, diagnostics } = checked;
  const only = options.only;
  const picked: Config =
    only === undefined
      ? config
      : { ...config, sources: new Map([...config.sources].filter(([, source]) => only(source))) };
  try {
    const registry = await SourceRegistry.create(picked, options.registry);
    return { ...checked, kind: "opened", registry };
  } catch (error) {
    const message = `cannot open the sources of ${file.path}: ${(error as Error).message}`;
    return { kind: "sources", file, message, diagnostics };
  }
}

/** Reads, checks and compiles the rules file, then opens its sources. */
export async function openRules(path: string, options: OpenOptions = {}): Promise<OpenedRules | OpenFailure> {
  const checked = await checkRules(path, options.mustRead, options.text);
  return checked.kind === "checked" ? openSources(checked, options) : checked;
}

/**
 * What a stage decides when its rules miss the event deadline: nothing (continue) when every
 * source its rules look up says on_error: continue (and `state.on_error` for rules calling rate()
 * or greylist()), else `defaults.error_reply` (a tempfail,
 * never a 5xx).
 */
export function deadlineDecisions(config: Config, ruleset: Ruleset): (stage: Stage) => Decision | undefined {
  const reply = parseReply(config.defaults.errorReply);
  const tempfail: Decision = {
    action: "tempfail",
    code: reply.code,
    text: reply.text,
    rule: "",
    shadow: false,
  };
  if (reply.enhancedCode !== undefined) tempfail.enhancedCode = reply.enhancedCode;
  const byStage = new Map<Stage, Decision | undefined>();
  for (const stage of STAGES) {
    const rules = ruleset.rulesFor(stage);
    const sources = rules.flatMap((rule) => rule.lookups);
    const allContinue =
      sources.every(
        (name) => (config.sources.get(name)?.onError ?? config.defaults.onError) === "continue",
      ) &&
      (config.state.onError === "continue" || !rules.some((rule) => rule.usesState));
    byStage.set(stage, allContinue ? undefined : tempfail);
  }
  return (stage) => byStage.get(stage);
}
