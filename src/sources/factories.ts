/**
 * Transitional: the registry opens each source through its type's descriptor (the list the
 * configuration was loaded with), so callers need not pass factories. src/engine/service.ts and
 * src/cli/dry-run.ts still do; remove this file once they stop.
 */
import { SOURCE_CATALOG } from "./catalog.js";
import type { SourceFactories } from "./descriptor.js";

export const defaultFactories: SourceFactories = Object.fromEntries(
  SOURCE_CATALOG.map((descriptor) => [descriptor.type, descriptor.create]),
);
