/**
 * The source types filterctl knows how to build (list sources are built by the registry itself).
 */
import type { DnsblSourceConfig, HttpSourceConfig, LdapSourceConfig } from "../config/types.js";
import { createDnsblSource } from "./dnsbl.js";
import { createHttpSource } from "./http.js";
import { createLdapSource } from "./ldap.js";
import type { SourceFactories } from "./registry.js";

export const defaultFactories: SourceFactories = {
  http: (config, ctx) => createHttpSource(config as HttpSourceConfig, ctx),
  ldap: (config, ctx) => createLdapSource(config as LdapSourceConfig, ctx),
  dnsbl: (config, ctx) => createDnsblSource(config as DnsblSourceConfig, ctx),
};
