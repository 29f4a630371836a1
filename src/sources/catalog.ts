/**
 * THE list of source types filterctl knows. Everything about a type is in its file in
 * src/sources/types/; adding one means writing that file and naming it here. The loader, the
 * schema (and `npm run schema`), the checker, the registry, reload and the quota service all read
 * this list, through the configuration loaded with it (Config.sourceTypes).
 */
import type { SourceDescriptor } from "./descriptor.js";
import { dnsbl } from "./types/dnsbl.js";
import { http } from "./types/http.js";
import { ldap } from "./types/ldap.js";
import { list } from "./types/list.js";
import { maildir } from "./types/maildir.js";
import { mbox } from "./types/mbox.js";

/** In the order the schema and messages list them. */
export const SOURCE_CATALOG: readonly SourceDescriptor[] = [maildir, mbox, http, ldap, dnsbl, list];
