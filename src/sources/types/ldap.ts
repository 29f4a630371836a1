/**
 * ldap: an LDAP directory; each table is a search filter. In rules: NAME.TABLE, e.g.
 * `rcpt in directory.addresses`, `directory.aliases[rcpt]`.
 */
import { record, text } from "../../config/build.js";
import { PASSWORD_FILE_LIMIT } from "../../config/read.js";
import type { LocatedText } from "../../config/types.js";
import type { SourceDescriptor } from "../descriptor.js";
import type { LdapSourceConfig } from "../ldap.js";

declare module "../../config/types.js" {
  interface SourceConfigs {
    ldap: LdapSourceConfig;
  }
}

export const ldap: SourceDescriptor<LdapSourceConfig> = {
  type: "ldap",
  kind: "table",
  label: "LDAP",
  ttlMs: { positive: 60_000, negative: 60_000 },
  schema: {
    summary: "ldap",
    typeDescription: "ldap: search an LDAP directory.",
    definition: {
      description: "An LDAP directory; each table is a search filter.",
      required: ["url", "base", "tables"],
      not: {
        required: ["password_file", "password_env"],
      },
      dependencies: {
        password_file: ["bind_dn"],
        password_env: ["bind_dn"],
      },
      properties: {
        url: {
          description: "Server URL, ldap://HOST[:PORT] or ldaps://HOST[:PORT].",
          type: "string",
          pattern: "^[Ll][Dd][Aa][Pp][Ss]?://[^\\s/?#]+/?$",
          patternErrorMessage: "ldap://HOST[:PORT] or ldaps://HOST[:PORT], without a path or query.",
        },
        bind_dn: {
          description: "DN to bind as; absent: anonymous bind.",
          type: "string",
          minLength: 1,
        },
        password_file: {
          description: "File holding the bind password (first line); keep it readable by filterctl only.",
          type: "string",
          minLength: 1,
        },
        password_env: {
          description: "Name of the environment variable holding the bind password.",
          type: "string",
          pattern: "^[A-Za-z_][A-Za-z0-9_]*$",
          patternErrorMessage:
            "An environment variable's name: letters, digits and '_', not starting with a digit.",
        },
        base: {
          description: "Search base DN, e.g. dc=mail.",
          type: "string",
        },
        tables: {
          description:
            "Tables by name, each an LDAP search filter with {key} (RFC 4515 escaped), e.g. (mailLocalAddress={key}).",
          type: "object",
          minProperties: 1,
          propertyNames: {
            $ref: "#/definitions/tableName",
          },
          additionalProperties: {
            description: "An LDAP search filter, e.g. (mailLocalAddress={key}).",
            type: "string",
            pattern: "^\\s*\\(.*\\)\\s*$",
            patternErrorMessage: "An LDAP filter in parentheses, e.g. (mailLocalAddress={key}).",
          },
        },
        start_tls: {
          description: "Upgrade the connection with StartTLS. Default false.",
          type: "boolean",
          default: false,
        },
        result_attribute: {
          description: "Attribute whose value TABLE[key] returns; default: the entry's DN.",
          type: "string",
          pattern: "^[A-Za-z][A-Za-z0-9-]*$",
          patternErrorMessage:
            "An attribute name: a letter, then letters, digits and '-', e.g. mailRoutingAddress.",
        },
      },
    },
    messages: {
      "#/definitions/ldapSource/properties/url": (what) =>
        `${what} must be an ldap:// or ldaps:// URL like ldap://127.0.0.1:389`,
      "#/definitions/ldapSource/properties/password_env": (what) =>
        `${what} must be the name of an environment variable, like LDAP_PASSWORD`,
      "#/definitions/ldapSource/properties/result_attribute": (what) =>
        `${what} must be an LDAP attribute name`,
      "#/definitions/ldapSource/properties/tables/additionalProperties": (what) =>
        `${what} must be an LDAP filter in parentheses, like (mailLocalAddress={key})`,
    },
  },
  build(raw, base, ctx) {
    const tables = new Map<string, LocatedText>();
    for (const table of Object.keys(record(raw.tables))) {
      tables.set(table, ctx.placeholders(["tables", table], `table '${table}'`));
    }
    return {
      ...base,
      type: "ldap",
      url: String(raw.url),
      bindDn: text(raw.bind_dn),
      passwordFile: text(raw.password_file),
      passwordEnv: text(raw.password_env),
      base: String(raw.base),
      startTls: raw.start_tls === true,
      resultAttribute: text(raw.result_attribute),
      tables,
    };
  },
  files: (config) =>
    config.passwordFile === undefined
      ? []
      : [
          {
            key: "password_file",
            path: config.passwordFile,
            label: "password_file",
            limit: PASSWORD_FILE_LIMIT,
          },
        ],
  // Loaded with the first source of this type: a configuration without one never loads ldapts.
  create: async (config, ctx) => (await import("../ldap.js")).createLdapSource(config, ctx),
};
