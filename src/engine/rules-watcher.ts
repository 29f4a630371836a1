/**
 * Watches a rules file and the files it names, for `serve`'s reload — in the one process, or in
 * the main process of `--workers`. Editors replace a file by renaming a new one over it, so the
 * folders are watched and their events filtered by name; a burst of events (one save) makes one
 * change, DEBOUNCE_MS after the last.
 */
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { referencedFiles } from "../config/load.js";
import type { Config } from "../config/types.js";

const DEBOUNCE_MS = 200;

interface WatchLogger {
  warn(fields: object, message: string): void;
}

export class RulesWatcher {
  private watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: WatchLogger,
    private readonly onChange: (reason: string) => void,
  ) {}

  /** Watches `configPath` and the files `config` names, instead of what was watched before. */
  watch(configPath: string, config: Config): void {
    this.unwatch();
    const configDir = dirname(resolve(configPath));
    const files = [resolve(configPath), ...referencedFiles(config).map((f) => resolve(configDir, f))];
    const byDir = new Map<string, Set<string>>();
    for (const file of files) {
      const names = byDir.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      byDir.set(dirname(file), names);
    }
    for (const [dir, names] of byDir) this.watchFolder(dir, names);
  }

  private watchFolder(dir: string, names: ReadonlySet<string>): void {
    try {
      const watcher = watch(dir, (_event, filename) => {
        if (filename === null || names.has(filename.toString())) this.changed(`${filename ?? dir} changed`);
      });
      watcher.on("error", (error) => this.logger.warn({ dir, err: error.message }, "cannot watch folder"));
      this.watchers.push(watcher);
    } catch (error) {
      this.logger.warn({ dir, err: (error as Error).message }, "cannot watch folder; reload with SIGHUP");
    }
  }

  private changed(reason: string): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.onChange(reason), DEBOUNCE_MS);
  }

  private unwatch(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  /** No more changes reported, including one waiting out its debounce. */
  close(): void {
    clearTimeout(this.debounce);
    this.unwatch();
  }
}
