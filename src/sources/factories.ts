/**
 * The source types filterctl knows how to build (list sources are built by the registry itself).
 */
import type { HttpSourceConfig } from "../config/types.js";
import { createHttpSource } from "./http.js";
import type { SourceFactories } from "./registry.js";

export const defaultFactories: SourceFactories = {
  http: (config, ctx) => createHttpSource(config as HttpSourceConfig, ctx),
};
