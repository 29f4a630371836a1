/**
 * The running configuration of `filterctl serve`: the compiled rules and their sources, swapped
 * atomically on reload (file change or SIGHUP). An invalid change is logged with every
 * diagnostic and changes nothing; transactions already started finish with their rules.
 * A reload applies the whole configuration (event_timeout, error_reply and shutdown_timeout
 * included) except the restart settings (config/types.ts RestartSettings): a change to one of
 * those is logged as a warning naming it, and the value serve started with stays.
 */
import type { Logger } from "pino";
import { withDeadline } from "../common/deadline.js";
import { type Diagnostic, formatDiagnostic } from "../common/diagnostics.js";
import type { Stage } from "../common/stages.js";
import { formatDuration } from "../common/units.js";
import {
  type Config,
  RESTART_SETTINGS,
  type RestartSettings,
  sameRestartSetting,
  showRestartSetting,
} from "../config/types.js";
import type { Reply } from "../milter/index.js";
import type { Decision } from "../runtime/model.js";
import type { Ruleset } from "../runtime/ruleset.js";
import type { RegistryOptions, SourceFactories, SourceRegistry } from "../sources/registry.js";
import { replyOf } from "./dry-run.js";
import { type Fuse, type FuseEvents, instrumentRules } from "./fuse.js";
import type { DecisionCause, Metrics } from "./metrics.js";
import {
  type DecisionEvent,
  errorReply,
  type HeadersDroppedEvent,
  type RulesService,
  type ServedRules,
} from "./milter-handler.js";
import { deadlineDecisions, EXIT_INVALID, exitCodeOf, type OpenedRules, openRules } from "./open-rules.js";
import { RulesWatcher } from "./rules-watcher.js";
import { closeState, type OpenState, openState, stateLookups } from "./state/open.js";

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** The rules being served (or still used by connections opened before a reload). */
export interface Active extends ServedRules {
  config: Config;
  ruleset: Ruleset;
  lookups: SourceRegistry;
  /** The rate/greylist store: the same object across reloads that leave `state:` as it was. */
  state: OpenState;
  eventTimeoutMs: number;
  fallback: Reply;
  /** Its validation warnings, counted by warningKey: a reload logs only the ones not here. */
  warnings: WarningCounts;
  /** Its rules' reject-rate fuses: new ones (armed) with each generation. */
  fuses: Fuse[];
}

/** Opened rules, not yet served. */
type Built = Pick<OpenedRules, "config" | "ruleset" | "registry"> & {
  state: OpenState;
  warnings: WarningCounts;
};

type WarningCounts = ReadonlyMap<string, number>;

/** Changes are picked up this long after the last write (editors write in several steps). */
/**
 * A reload not done by then is given up: the rules served stay, and the next change or SIGHUP
 * reloads again (a reload stuck on a source must not block every later one).
 */
export const RELOAD_DEADLINE_MS = 10_000;

/**
 * The rules file's content as a `--workers` primary read and validated it, and the generation it
 * numbered that content (1 at start, one more for each change it validated).
 */
export interface ValidatedRules {
  text: string;
  generation: number;
}

export interface RuntimeOptions {
  metrics?: Metrics;
  /** Default RELOAD_DEADLINE_MS. */
  reloadDeadlineMs?: number;
  /** Default: the real sources. */
  factories?: SourceFactories;
  /** The memory state's clock (tests); default Date.now. */
  stateClock?: () => number;
  /** The reject-rate fuses' clock (tests); default Date.now. */
  fuseClock?: () => number;
  /** Restart settings the command line sets: the file's value is not used, so its changes are not reported. */
  fixed?: readonly (keyof RestartSettings)[];
}

/** One reload; `abandoned` once its deadline passed or the runtime closed. */
interface Attempt {
  abandoned: boolean;
  /** Stops building sources once abandoned. */
  stop: AbortController;
}

export class RulesRuntime implements RulesService {
  private active: Active;
  /** Connections using each generation's rules. */
  private readonly users = new Map<Active, number>();
  private readonly closed = new WeakSet<Active>();
  private readonly closedStates = new WeakSet<OpenState>();
  private readonly watcher: RulesWatcher;
  private reloading: Promise<boolean> | undefined;
  /** A change that came during a reload, done when it ends: with the rules it was sent, if any. */
  private reloadAgain: { validated?: ValidatedRules } | undefined;
  /** The reload running now, if any (a given-up one may still run on: it is no longer here). */
  private attempt: Attempt | undefined;
  private closing = false;
  private readonly metrics: Metrics | undefined;
  /** The restart settings of the file serve started with: what runs until a restart. */
  private readonly running: RestartSettings;
  /** The value each restart setting was last warned about: a reload repeats no warning it already gave. */
  /** Whether this runtime watches its files (serve without workers); see watchFiles. */
  private watching = false;
  private readonly warnedRestart = new Map<keyof RestartSettings, RestartSettings[keyof RestartSettings]>();

  private constructor(
    private readonly path: string,
    private readonly logger: Logger,
    private readonly options: RuntimeOptions,
    first: Built,
    generation: number,
  ) {
    this.metrics = options.metrics;
    this.watcher = new RulesWatcher(logger, (reason) => void this.reload(reason));
    this.active = this.activate(first, generation);
    this.running = first.config;
    this.metrics?.generation.set(generation);
  }

  /**
   * Loads the configuration once; an invalid or unreadable file is a ConfigError (exit 1 / 2).
   * `validated`: the rules a `--workers` primary read and validated, loaded instead of the file.
   */
  static async start(
    path: string,
    logger: Logger,
    options: RuntimeOptions = {},
    validated?: ValidatedRules,
  ): Promise<RulesRuntime> {
    const built = await RulesRuntime.build(path, logger, options, undefined, { text: validated?.text });
    if ("error" in built) throw built.error;
    const generation = validated?.generation ?? 1;
    const runtime = new RulesRuntime(path, logger, options, built, generation);
    logger.info(
      { generation, rules: built.ruleset.rules.length, sources: built.config.sources.size },
      "rules loaded",
    );
    return runtime;
  }

  private static async build(
    path: string,
    logger: Logger,
    { metrics, factories, stateClock }: RuntimeOptions,
    previous: Pick<Active, "lookups" | "state" | "warnings"> | undefined,
    { signal, text }: { signal?: AbortSignal; text?: string | undefined },
  ): Promise<Built | { error: ConfigError }> {
    const registry: RegistryOptions = {
      ...(factories !== undefined ? { factories } : {}),
      logger,
      onDnsblState: (source, zone, health) => {
        metrics?.setDnsblState(source, zone, health.state);
      },
    };
    if (previous !== undefined) registry.previous = previous.lookups;
    if (signal !== undefined) registry.signal = signal;
    if (metrics !== undefined) {
      registry.onLookup = (source, ms, outcome) => {
        metrics.lookupSeconds.observe({ source, outcome }, ms / 1000);
        if (outcome !== "ok") metrics.lookupErrors.inc({ source });
      };
    }
    const opened = await openRules(path, { mustRead: true, registry, ...(text !== undefined && { text }) });
    const warnings = opened.kind === "unreadable" ? new Map() : warningCounts(opened.diagnostics);
    if (opened.kind !== "unreadable") logDiagnostics(logger, opened.diagnostics, previous?.warnings);
    switch (opened.kind) {
      case "opened": {
        const built = await RulesRuntime.withState(opened, { logger, metrics, stateClock }, previous?.state);
        return "error" in built ? built : { ...built, warnings };
      }
      case "unreadable":
        return { error: new ConfigError(opened.message, exitCodeOf(opened)) };
      case "invalid": {
        const errors = opened.diagnostics.filter((d) => d.severity === "error").length;
        const message = `${path}: invalid (${errors} error${errors === 1 ? "" : "s"})`;
        return { error: new ConfigError(message, exitCodeOf(opened)) };
      }
      case "sources":
        return { error: new ConfigError(opened.message, exitCodeOf(opened)) };
    }
  }

  /**
   * Opens the store `state:` names (the previous one when `state:` did not change: its counts
   * survive the reload) and binds it to the new rules' lookups, with their `greylist:` settings.
   */
  private static async withState(
    opened: OpenedRules,
    {
      logger,
      metrics,
      stateClock,
    }: { logger: Logger; metrics?: Metrics | undefined; stateClock?: (() => number) | undefined },
    previous: OpenState | undefined,
  ): Promise<Omit<Built, "warnings"> | { error: ConfigError }> {
    let state: OpenState;
    try {
      state = openState(opened.config.state, logger, previous, stateClock);
    } catch (error) {
      await opened.registry.discard();
      const message = `cannot open the ${opened.config.state.type} state: ${(error as Error).message}`;
      // Like a source that cannot be opened: a configuration problem.
      return { error: new ConfigError(message, EXIT_INVALID) };
    }
    const store = state.config.type;
    opened.registry.state = stateLookups(state.store, opened.config.greylist, {
      record: true,
      failed: () => metrics?.stateErrors.inc({ store }),
    });
    return { ...opened, state };
  }

  private activate(
    { config, ruleset: compiled, registry, state, warnings }: Built,
    generation: number,
  ): Active {
    const metrics = this.metrics;
    const { ruleset, fuses } = instrumentRules(compiled, config, {
      events: this.fuseEvents(generation),
      ...(this.options.fuseClock !== undefined ? { now: this.options.fuseClock } : {}),
      ...(metrics !== undefined
        ? {
            evaluated: (rule: string) => {
              const counter = metrics.evaluationCount(rule);
              return () => {
                counter.count++;
              };
            },
          }
        : {}),
    });
    for (const fuse of fuses) metrics?.ruleFused.set({ rule: fuse.rule }, 0);
    metrics?.initialise({
      rules: compiled.rules.map((r) => ({
        name: r.name,
        shadow: r.shadow,
        canFail: r.lookups.length > 0 || r.usesState,
        fused: fuses.some((fuse) => fuse.rule === r.name),
      })),
      sources: [...config.sources.keys()],
      store: state.config.type,
    });
    return {
      warnings,
      fuses,
      config,
      ruleset,
      lookups: registry,
      state,
      generation,
      eventTimeoutMs: config.eventTimeoutMs,
      deadlineDecision: deadlineDecisions(config, ruleset),
      fallback: errorReply(config.defaults.errorReply),
    };
  }

  /**
   * What a fuse of generation `generation` logs; the gauge follows the generation being served
   * only (a connection still on older rules may trip an older fuse: logged, not shown).
   */
  private fuseEvents(generation: number): FuseEvents {
    const shown = () => this.active === undefined || this.active.generation === generation;
    return {
      tripped: (rule, fuse, figures) => {
        if (shown()) this.metrics?.ruleFused.set({ rule }, 1);
        const window = formatDuration(fuse.windowMs);
        const cooldown = formatDuration(fuse.cooldownMs);
        const percent = (rate: number) => `${Math.round(rate * 1000) / 10}%`;
        this.logger.error(
          {
            rule,
            generation,
            evaluations: figures.evaluations,
            refused: figures.refused,
            rate: Math.round(figures.rate * 1000) / 1000,
            maxRate: fuse.maxRate,
            window,
            minEvents: fuse.minEvents,
            cooldown,
            until: new Date(figures.until).toISOString(),
          },
          `rule '${rule}' fused: ${figures.refused} of its ${figures.evaluations} evaluations in the last ${window} rejected or tempfailed (${percent(figures.rate)}, more than max_rate ${percent(fuse.maxRate)}); it runs in shadow mode for ${cooldown} or until the rules are reloaded`,
        );
      },
      rearmed: (rule, fuse) => {
        if (shown()) this.metrics?.ruleFused.set({ rule }, 0);
        this.logger.warn(
          { rule, generation, cooldown: formatDuration(fuse.cooldownMs) },
          `rule '${rule}' re-armed: its ${formatDuration(fuse.cooldownMs)} cooldown passed, it enforces again`,
        );
      },
    };
  }

  /**
   * Restart settings the reloaded file changes: each is named in a warning, and the running
   * value stays (the socket is bound, the limits are the server's). A value already warned
   * about is not warned about again by the next reloads (an edit of a rule says nothing new
   * about `listen`); a different value, or a return to the running one and away again, is.
   */
  private warnRestartSettings(next: Config, generation: number): void {
    const fixed = this.options.fixed ?? [];
    for (const [key, name] of Object.entries(RESTART_SETTINGS) as [keyof RestartSettings, string][]) {
      if (fixed.includes(key)) continue;
      if (sameRestartSetting(next[key], this.running[key])) {
        this.warnedRestart.delete(key);
        continue;
      }
      if (this.warnedRestart.has(key) && sameRestartSetting(this.warnedRestart.get(key), next[key])) continue;
      this.warnedRestart.set(key, next[key]);
      const running = showRestartSetting(key, this.running[key]);
      const configured = showRestartSetting(key, next[key]);
      this.logger.warn(
        { generation, setting: name, running, configured },
        `'${name}' changed to ${configured}: it takes a restart; still running with ${running}`,
      );
    }
  }

  get generation(): number {
    return this.active.generation;
  }

  get config(): Config {
    return this.active.config;
  }

  current(): Active {
    return this.active;
  }

  retain(rules: Active): void {
    this.users.set(rules, (this.users.get(rules) ?? 0) + 1);
  }

  release(rules: Active): void {
    const count = (this.users.get(rules) ?? 0) - 1;
    if (count > 0) this.users.set(rules, count);
    else this.users.delete(rules);
    this.closeIfUnused(rules);
  }

  /**
   * Closes the sources of replaced rules nobody uses any more (those a reload took over stay
   * open), and their state store when no rules in use share it (a changed `state:`).
   */
  private closeIfUnused(rules: Active): void {
    if (rules === this.active || (this.users.get(rules) ?? 0) > 0 || this.closed.has(rules)) return;
    this.closed.add(rules);
    void rules.lookups.close();
    const shared = [this.active, ...this.users.keys()].some((other) => other.state === rules.state);
    if (!shared && !this.closedStates.has(rules.state)) {
      this.closedStates.add(rules.state);
      void closeState(rules.state, this.logger);
    }
  }

  deadlinePassed(conn: number, stage: Stage, timeoutMs: number, reply: Reply | undefined): void {
    this.logger.warn(
      {
        conn,
        stage,
        timeoutMs,
        reply:
          reply === undefined
            ? "continue"
            : reply.action === "tempfail"
              ? `tempfail ${reply.code ?? ""}`.trim()
              : reply.action,
      },
      "the rules of this event missed the event deadline: answered by their sources' on_error",
    );
  }

  /**
   * Loads, checks and swaps in the file's current content (or `validated`, the rules a
   * `--workers` primary read and validated, with the generation it numbered them); answers
   * whether it was taken. Done or given up within the reload deadline.
   */
  reload(reason: string, validated?: ValidatedRules): Promise<boolean> {
    if (this.closing) return Promise.resolve(false);
    if (this.reloading !== undefined) {
      // A change during a reload is loaded once more when it ends (the latest rules sent, if any).
      this.reloadAgain = validated === undefined ? {} : { validated };
      return this.reloading;
    }
    this.reloading = this.reloadWithin(reason, validated).finally(() => {
      this.reloading = undefined;
      const again = this.reloadAgain;
      this.reloadAgain = undefined;
      if (again !== undefined) void this.reload("changed during reload", again.validated);
    });
    return this.reloading;
  }

  private async reloadWithin(reason: string, validated: ValidatedRules | undefined): Promise<boolean> {
    const attempt: Attempt = { abandoned: false, stop: new AbortController() };
    this.attempt = attempt;
    const deadlineMs = this.options.reloadDeadlineMs ?? RELOAD_DEADLINE_MS;
    try {
      const result = await withDeadline(this.doReload(reason, attempt, validated), {
        ms: deadlineMs,
        onTimeout: () => "expired" as const,
        // Shutting down never waits for a reload.
        unref: true,
      });
      if (result !== "expired") return result;
    } finally {
      if (this.attempt === attempt) this.attempt = undefined;
    }
    attempt.abandoned = true;
    attempt.stop.abort();
    this.metrics?.reloads.inc({ result: "failure" });
    const generation = this.active.generation;
    this.logger.error(
      { generation, reason, deadlineMs },
      `reload given up: not done within ${deadlineMs / 1000} s, still serving generation ${generation}; the next change or SIGHUP reloads again`,
    );
    return false;
  }

  private async doReload(
    reason: string,
    attempt: Attempt,
    validated: ValidatedRules | undefined,
  ): Promise<boolean> {
    const old = this.active;
    const signal = attempt.stop.signal;
    const text = validated?.text;
    const built = await RulesRuntime.build(this.path, this.logger, this.options, old, { signal, text });
    if (attempt.abandoned) {
      if (!("error" in built)) {
        await built.registry.discard();
        if (built.state !== old.state) await closeState(built.state, this.logger);
      }
      if (!this.closing) {
        this.logger.warn(
          { generation: this.active.generation, reason },
          "a reload given up earlier has finished: its result is dropped",
        );
      }
      return false;
    }
    if ("error" in built) {
      this.metrics?.reloads.inc({ result: "failure" });
      this.logger.error(
        { generation: old.generation, reason },
        `reload refused, still serving generation ${old.generation}: ${built.error.message}`,
      );
      return false;
    }
    built.registry.takeOver();
    this.metrics?.ruleFused.reset();
    // A worker takes its primary's number: every worker serving the same rules says the same one.
    this.active = this.activate(built, validated?.generation ?? old.generation + 1);
    this.warnRestartSettings(built.config, this.active.generation);
    this.metrics?.reloads.inc({ result: "success" });
    this.metrics?.generation.set(this.active.generation);
    this.logger.info(
      { generation: this.active.generation, reason, rules: built.ruleset.rules.length },
      `reloaded: serving generation ${this.active.generation}`,
    );
    if (this.watching) this.rewatch();
    // Connections still on the old rules may look things up: its own sources close with the last of them.
    this.closeIfUnused(old);
    return true;
  }

  /**
   * Watches the rules file and the files it names: a change reloads. Not called in a `--workers`
   * worker, whose primary watches and tells it: a reload must not start watching there either.
   */
  watchFiles(): void {
    this.watching = true;
    this.rewatch();
  }

  private rewatch(): void {
    this.watcher.watch(this.path, this.active.config);
  }

  report(event: DecisionEvent): void {
    const { outcome } = event;
    const context = {
      conn: event.conn,
      generation: event.generation,
      stage: event.stage,
      client: event.client,
      ...(event.queueId ? { queueId: event.queueId } : {}),
      ...(event.from !== undefined ? { from: event.from } : {}),
      ...(event.rcpt !== undefined ? { rcpt: event.rcpt } : {}),
    };
    for (const effect of outcome.effects) {
      if (effect.kind === "log") this.logger.info({ ...context, rule: effect.rule }, effect.text);
    }
    for (const trace of outcome.rules) {
      for (const error of trace.errors) {
        this.logger.warn(
          { ...context, rule: trace.rule, source: error.source, err: error.message },
          "lookup failed",
        );
      }
    }
    for (const shadow of outcome.shadowDecisions) {
      this.metrics?.decisions.inc({
        rule: shadow.rule,
        decision: shadow.action,
        cause: causeOf(shadow),
        shadow: "true",
      });
      this.logger.info(
        {
          ...context,
          decision: shadow.action,
          rule: shadow.rule,
          reply: replyOf(shadow),
          shadow: true,
          ...(shadow.fused ? { fused: true } : {}),
        },
        "shadow decision",
      );
    }
    const decision = outcome.decision;
    if (decision !== undefined) {
      this.metrics?.decisions.inc({
        rule: decision.rule,
        decision: decision.action,
        cause: causeOf(decision),
        shadow: "false",
      });
      const lookups = event.lookups.map((l) => ({
        source: l.source,
        what: l.what,
        key: l.key,
        result: l.error === undefined ? l.result : `error: ${l.error}`,
        ms: Math.round(l.ms * 10) / 10,
      }));
      const fields = {
        ...context,
        decision: decision.action,
        rule: decision.rule,
        reply: replyOf(decision),
        lookups,
      };
      this.logger.info(
        decision.lookupError ? { ...fields, lookupError: decision.lookupError } : fields,
        "decision",
      );
    }
  }

  headersDropped(event: HeadersDroppedEvent): void {
    this.logger.warn(
      {
        conn: event.conn,
        ...(event.queueId ? { queueId: event.queueId } : {}),
        dropped: event.dropped,
        added: event.added,
        rule: event.rules.join(", "),
      },
      `dropped ${event.dropped} header${event.dropped === 1 ? "" : "s"} the rules added: at most ${event.added} are added to one message`,
    );
  }

  keptRules(conn: number, generation: number, current: number): void {
    this.logger.info(
      { conn, generation, current },
      `connection ${conn} keeps generation ${generation} until the MTA closes it: generation ${current} needs stages, replies or macros this connection did not negotiate`,
    );
  }

  /** Feeds the source counters into the metrics (called before each scrape). */
  collectCounters(): void {
    if (this.metrics === undefined) return;
    // A fuse re-arms when it is next asked: ask now, so that the gauge shows a cooldown that passed.
    for (const fuse of this.active.fuses) void fuse.blown;
    this.metrics.copyEvaluations();
    for (const [source, counters] of this.active.lookups.counters()) {
      this.metrics.copySourceCounters(source, counters.lookups, counters.hits);
    }
  }

  /** Whether a reload is running (reported when shutdown is cut short). */
  get reloadInFlight(): boolean {
    return this.attempt !== undefined;
  }

  async close(): Promise<void> {
    this.closing = true;
    // A reload still running drops its result rather than swap in sources nobody closes.
    if (this.attempt !== undefined) {
      this.attempt.abandoned = true;
      this.attempt.stop.abort();
    }
    this.watcher.close();
    await this.active.lookups.close();
    if (!this.closedStates.has(this.active.state)) {
      this.closedStates.add(this.active.state);
      await closeState(this.active.state, this.logger);
    }
  }
}

/** The event deadline's decision is no rule's (open-rules.ts deadlineDecisions). */
function causeOf(decision: Decision): DecisionCause {
  if (decision.rule === "") return "deadline";
  return decision.lookupError !== undefined ? "error" : "policy";
}

/**
 * A warning's identity across reloads, without its position: an edit above it moves it, and it
 * is still the warning the postmaster has seen.
 */
function warningKey(d: Diagnostic): string {
  return `${d.file}\0${d.message}\0${d.hint ?? ""}`;
}

function warningCounts(diagnostics: readonly Diagnostic[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of diagnostics) {
    if (d.severity === "warning") counts.set(warningKey(d), (counts.get(warningKey(d)) ?? 0) + 1);
  }
  return counts;
}

/**
 * Errors always (they refuse the reload); warnings only those the served generation did not
 * have, so that every reload does not repeat the same ones (counted: a second copy is new).
 */
function logDiagnostics(logger: Logger, diagnostics: readonly Diagnostic[], served?: WarningCounts): void {
  const seen = new Map(served);
  for (const d of diagnostics) {
    const fields = { file: d.file, line: d.line, column: d.column, severity: d.severity };
    if (d.severity !== "warning") {
      logger.error(fields, formatDiagnostic(d));
      continue;
    }
    const left = seen.get(warningKey(d)) ?? 0;
    if (left > 0) seen.set(warningKey(d), left - 1);
    else logger.warn(fields, formatDiagnostic(d));
  }
}
