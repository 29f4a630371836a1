/**
 * The source types filterctl knows how to build (list sources are built by the registry itself).
 */
import type {
  DnsblSourceConfig,
  HttpSourceConfig,
  LdapSourceConfig,
  MaildirSourceConfig,
  MboxSourceConfig,
} from "../config/types.js";
import { createDnsblSource } from "./dnsbl.js";
import { createHttpSource } from "./http.js";
import { createLdapSource } from "./ldap.js";
import { createMaildirSource } from "./maildir.js";
import { createMboxSource } from "./mbox.js";
import type { SourceFactories } from "./registry.js";

export const defaultFactories: SourceFactories = {
  maildir: (config, ctx) => createMaildirSource(config as MaildirSourceConfig, ctx),
  mbox: (config, ctx) => createMboxSource(config as MboxSourceConfig, ctx),
  http: (config, ctx) => createHttpSource(config as HttpSourceConfig, ctx),
  ldap: (config, ctx) => createLdapSource(config as LdapSourceConfig, ctx),
  dnsbl: (config, ctx) => createDnsblSource(config as DnsblSourceConfig, ctx),
};
