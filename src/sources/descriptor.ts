/**
 * A source type, whole: what the configuration needs (SourceTypeSpec: schema fragment, config
 * builder, TTLs, kind, files) and how to open a source of it. Each built-in type is one file in
 * src/sources/types/; src/sources/catalog.ts lists them.
 */
import type { Config, SourceConfig, SourceConfigBase, SourceTypeSpec } from "../config/types.js";
import type { Source, SourceContext } from "./types.js";

export interface SourceDescriptor<C extends SourceConfigBase = SourceConfigBase> extends SourceTypeSpec<C> {
  /** Opens a source of this type; the registry owns it (caches it, closes it, reuses it on reload when its config is unchanged). */
  create(config: C, ctx: SourceContext): Source | Promise<Source>;
}

/** Builds one source of a type; the registry owns it and closes it. */
export type SourceFactory = (config: SourceConfig, ctx: SourceContext) => Source | Promise<Source>;
/** Factories by type name, replacing the descriptors' (tests use them for fake sources). */
export type SourceFactories = Partial<Record<string, SourceFactory>>;

/** Whether a spec the configuration was read with can also open sources. */
export function isDescriptor(spec: SourceTypeSpec | undefined): spec is SourceDescriptor {
  return typeof (spec as Partial<SourceDescriptor> | undefined)?.create === "function";
}

/** The descriptor of a source's type, as the configuration was read with it. */
export function descriptorOf(config: Config, type: string): SourceDescriptor | undefined {
  const spec = config.sourceTypes.get(type);
  return isDescriptor(spec) ? spec : undefined;
}

/**
 * Opens the source `name` of a configuration on its own, outside a registry (no cache): what
 * `filterctl quota-server` answers from (with `ctx.quotaService`). The caller closes it.
 */
export async function openSource(config: Config, name: string, ctx: SourceContext): Promise<Source> {
  const source = config.sources.get(name);
  if (source === undefined) throw new Error(`no source named '${name}'`);
  const descriptor = descriptorOf(config, source.type);
  if (descriptor === undefined) throw new Error(`${source.type} sources cannot be opened`);
  return descriptor.create(source, ctx);
}
