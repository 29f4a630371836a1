/**
 * LDAP tables: each table of an `ldap` source is a search filter template, e.g.
 * `(mailLocalAddress={key})`. `has` answers whether a subtree search under `base` finds an
 * entry; `get` answers the `result_attribute` of the first entry (its DN when none is set).
 *
 * One connection per source, reused by every lookup (LDAP multiplexes requests by message ID).
 * When it fails, it is re-established on demand with exponential backoff (100 ms doubling to
 * 5 s); while a backoff runs, lookups fail at once with an error, so the rule's `on_error`
 * applies without waiting. Every wait is bounded: connect, TLS, bind and search by
 * `timeout` (the search also carries a server-side time limit), and by the lookup's AbortSignal.
 *
 * Security: every placeholder value is RFC 4515-escaped (placeholders.ts); the bind password
 * (from `password_file` or `password_env`) never appears in a log line or an error message; and
 * a connection is never silently reopened without its bind (ldapts would otherwise reconnect
 * anonymously on its own, turning "not allowed to read" into "absent").
 */
import { isIP, connect as netConnect, type Socket } from "node:net";
import { dirname, resolve } from "node:path";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import {
  ApproximateFilter,
  Client,
  type Entry,
  EqualityFilter,
  ExtensibleFilter,
  type Filter,
  FilterParser,
  GreaterThanEqualsFilter,
  AndFilter as LdapAndFilter,
  OrFilter as LdapOrFilter,
  LessThanEqualsFilter,
  NotFilter,
  ResultCodeError,
  SubstringFilter,
} from "ldapts";
import { settlesWithin, withDeadline } from "../common/deadline.js";
import { ConfigReadError, PASSWORD_FILE_LIMIT, readBoundedFile } from "../config/read.js";
import type { LocatedText, SourceConfigBase } from "../config/types.js";
import { fillLdapFilter, valuesFor } from "./placeholders.js";
import type { SourceContext, TableSource } from "./types.js";

/** A failed LDAP lookup (connection, bind or search); the message never contains the password. */
export interface LdapSourceConfig extends SourceConfigBase {
  type: "ldap";
  url: string;
  bindDn?: string;
  passwordFile?: string;
  passwordEnv?: string;
  base: string;
  startTls: boolean;
  /** Attribute whose value `TABLE[key]` returns; default: the entry's DN. */
  resultAttribute?: string;
  /** Table name → filter template, with where the filter is in the file. */
  tables: Map<string, LocatedText>;
}

export class LdapLookupError extends Error {
  constructor(
    message: string,
    /** The LDAP result code, when the server answered one (49 = invalid credentials, 32 = no such object...). */
    readonly resultCode?: number,
  ) {
    super(message);
    this.name = "LdapLookupError";
  }
}

export interface LdapSourceOptions {
  /** Extra TLS options for ldaps:// and start_tls (tests pass `ca`); certificates are always verified. */
  tls?: ConnectionOptions;
  /** First delay after a failed connection attempt, ms (default 100); doubles up to maxBackoffMs. */
  initialBackoffMs?: number;
  /** Longest delay between connection attempts, ms (default 5000). */
  maxBackoffMs?: number;
}

/** has/get need one entry; asking for two costs nothing and shows the server honours the limit. */
export const SEARCH_SIZE_LIMIT = 2;
const DEFAULT_INITIAL_BACKOFF_MS = 100;
const DEFAULT_MAX_BACKOFF_MS = 5_000;
/** How long close() waits for the unbind to be written before dropping the socket. */
const CLOSE_GRACE_MS = 1_000;

/**
 * The bind password: `password_file` (relative to the config file's folder; one trailing
 * newline stripped) or `password_env`. undefined when the source binds anonymously.
 */
export async function readBindPassword(
  config: LdapSourceConfig,
  configPath: string,
): Promise<string | undefined> {
  if (config.bindDn === undefined) return undefined;
  if (config.passwordFile !== undefined) {
    const file = resolve(dirname(configPath), config.passwordFile);
    let text: string;
    try {
      text = (await readBoundedFile(file, PASSWORD_FILE_LIMIT)).toString("utf8");
    } catch (error) {
      // The reason names the file and what is wrong with it, never its content.
      const reason = error instanceof ConfigReadError ? error.reason : "cannot be read";
      throw new Error(`ldap source '${config.name}': password_file ${file}: ${reason}`);
    }
    return text.replace(/\r?\n$/, "");
  }
  if (config.passwordEnv !== undefined) {
    const value = process.env[config.passwordEnv];
    if (value === undefined) {
      throw new Error(
        `ldap source '${config.name}': environment variable ${config.passwordEnv} (password_env) is not set`,
      );
    }
    return value;
  }
  throw new Error(`ldap source '${config.name}': bind_dn needs password_file or password_env`);
}

// --- Filters ------------------------------------------------------------------------------------

/**
 * Parses an RFC 4515 filter into ldapts filter objects with byte-exact values.
 *
 * ldapts (8.x) decodes each `\XX` escape as one character (Latin-1) and later encodes values as
 * UTF-8, so `\c3\a9` ("é" escaped byte by byte, as RFC 4515 and escapeLdapFilterValue do)
 * would reach the server as four bytes and never match. Here non-ASCII characters written
 * literally are first escaped too, so after parsing every value is a string of bytes (one
 * character per byte), which is turned back into the intended value: a Buffer for equality
 * (exact bytes), UTF-8 text for the other filter types (which only take strings).
 */
export function parseLdapFilter(text: string): Filter {
  let ascii = "";
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    if (code < 0x80) ascii += char;
    else for (const byte of Buffer.from(char, "utf8")) ascii += `\\${byte.toString(16).padStart(2, "0")}`;
  }
  const filter = FilterParser.parseString(ascii);
  fixValues(filter);
  return filter;
}

const bytesToText = (value: string): string => Buffer.from(value, "latin1").toString("utf8");

function fixValues(filter: Filter): void {
  if (filter instanceof LdapAndFilter || filter instanceof LdapOrFilter) {
    for (const child of filter.filters) fixValues(child);
  } else if (filter instanceof NotFilter) {
    fixValues(filter.filter);
  } else if (filter instanceof EqualityFilter) {
    if (typeof filter.value === "string") filter.value = Buffer.from(filter.value, "latin1");
  } else if (filter instanceof SubstringFilter) {
    filter.initial = bytesToText(filter.initial);
    filter.any = filter.any.map(bytesToText);
    filter.final = bytesToText(filter.final);
  } else if (
    filter instanceof GreaterThanEqualsFilter ||
    filter instanceof LessThanEqualsFilter ||
    filter instanceof ApproximateFilter ||
    filter instanceof ExtensibleFilter
  ) {
    filter.value = bytesToText(filter.value);
  }
}

/** The filter of one lookup: the table's template with every value RFC 4515-escaped. */
export function lookupFilter(template: string, key: string, recipientDelimiter?: string): Filter {
  return parseLdapFilter(fillLdapFilter(template, valuesFor(key, recipientDelimiter)));
}

// --- Helpers -------------------------------------------------------------------------------------

function describe(error: unknown): string {
  if (error instanceof ResultCodeError) {
    // ldapts appends " Code: 0x31"; say it the way LDAP tools do.
    return `${error.message.replace(/ Code: 0x[0-9a-f]+$/, "")} (LDAP result ${error.code})`;
  }
  // ldapts puts the socket's own error on a second line ("Socket error. Message type: ...\nread ECONNRESET").
  if (error instanceof Error) return error.message.replace(/\s*\n\s*/g, ": ");
  return String(error);
}

function resultCodeOf(error: unknown): number | undefined {
  if (error instanceof ResultCodeError) return error.code;
  return error instanceof LdapLookupError ? error.resultCode : undefined;
}

/** Rejects as soon as `signal` aborts, whatever `work` does (its later failure is swallowed). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined, what: () => string): Promise<T> {
  work.catch(() => {});
  if (signal?.aborted) return Promise.reject(new LdapLookupError(`${what()}: aborted before it started`));
  return withDeadline(work, {
    signal,
    onAbort: () => new LdapLookupError(`${what()}: aborted (deadline reached)`),
  });
}

interface Target {
  url: string;
  host: string;
  port: number;
  secure: boolean;
}

function parseUrl(name: string, url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`ldap source '${name}': invalid url ${JSON.stringify(url)}`);
  }
  const scheme = parsed.protocol.replace(/:$/, "").toLowerCase();
  if (scheme !== "ldap" && scheme !== "ldaps") {
    throw new Error(`ldap source '${name}': url must start with ldap:// or ldaps://, not ${scheme}://`);
  }
  let host = parsed.hostname || "localhost";
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const secure = scheme === "ldaps";
  const port = parsed.port === "" ? (secure ? 636 : 389) : Number(parsed.port);
  return { url: `${scheme}://${parsed.host || host}`, host, port, secure };
}

// --- The connection ------------------------------------------------------------------------------

interface Live {
  client: Client;
  socket: Socket;
}

/**
 * The source's one connection: opened on demand, bound, and reopened after a failure with
 * exponential backoff. `acquire()` answers a bound client, joins an attempt in progress, or fails
 * at once while a backoff delay runs.
 */
class LdapConnection {
  private live: Live | undefined;
  private connecting: Promise<Live> | undefined;
  private failures = 0;
  private retryAt = 0;
  private lastError = "";
  private down = false;
  private closed = false;
  private readonly tlsOptions: ConnectionOptions;

  constructor(
    private readonly config: LdapSourceConfig,
    private readonly target: Target,
    private readonly password: string | undefined,
    private readonly ctx: SourceContext,
    private readonly options: LdapSourceOptions,
  ) {
    // Verify the server's certificate against its name (SNI only for names, never for addresses).
    this.tlsOptions = {
      host: target.host,
      ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
      ...options.tls,
      rejectUnauthorized: true,
    };
  }

  private get label(): string {
    return `ldap source '${this.config.name}'`;
  }

  /** Never lets the password reach a message, even if a library or server echoed it. */
  scrub(message: string): string {
    return this.password ? message.split(this.password).join("<password>") : message;
  }

  async acquire(signal: AbortSignal | undefined): Promise<Client> {
    if (this.closed) throw new LdapLookupError(`${this.label}: closed`);
    if (this.live !== undefined) {
      if (this.live.client.isConnected) return this.live.client;
      this.lost("connection closed");
    }
    if (this.connecting === undefined) {
      const wait = this.retryAt - Date.now();
      if (wait > 0) {
        throw new LdapLookupError(
          `${this.label}: ${this.target.url} unavailable (${this.lastError}); next attempt in ${wait} ms`,
        );
      }
      const attempt = this.open().then(
        (live) => {
          this.connecting = undefined;
          if (this.closed) {
            this.dispose(live);
            throw new LdapLookupError(`${this.label}: closed`);
          }
          this.live = live;
          this.failures = 0;
          this.retryAt = 0;
          const as = this.config.bindDn === undefined ? "anonymously" : `as ${this.config.bindDn}`;
          if (this.down) {
            this.down = false;
            this.ctx.logger.info(
              { source: this.config.name, url: this.target.url },
              `${this.label}: connected again ${as}`,
            );
          } else {
            this.ctx.logger.info(
              { source: this.config.name, url: this.target.url },
              `${this.label}: connected ${as}`,
            );
          }
          return live;
        },
        (error: unknown) => {
          this.connecting = undefined;
          const message = this.scrub(error instanceof LdapLookupError ? error.message : describe(error));
          this.failed(message);
          throw new LdapLookupError(`${this.label}: ${message}`, resultCodeOf(error));
        },
      );
      attempt.catch(() => {});
      this.connecting = attempt;
    }
    const live = await untilAborted(
      this.connecting,
      signal,
      () => `${this.label}: connecting to ${this.target.url}`,
    );
    return live.client;
  }

  /**
   * A lookup saw the connection fail under it (socket error, timed out): drop it and back off.
   * Counted once per connection, however many lookups were in flight on it.
   */
  broken(client: Client, reason: string): void {
    if (this.live === undefined || this.live.client !== client) return;
    this.dispose(this.live);
    this.live = undefined;
    this.failed(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    const live = this.live;
    this.live = undefined;
    if (live === undefined) return;
    await settlesWithin(live.client.unbind(), CLOSE_GRACE_MS);
    live.socket.destroy();
  }

  private lost(reason: string): void {
    if (this.live !== undefined) this.dispose(this.live);
    this.live = undefined;
    if (!this.down) {
      this.down = true;
      this.ctx.logger.warn(
        { source: this.config.name, url: this.target.url, reason },
        `${this.label}: connection lost (${reason}); reconnecting`,
      );
    }
  }

  private failed(message: string): void {
    this.failures++;
    const initial = this.options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
    const max = this.options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    const delay = Math.min(max, initial * 2 ** Math.min(this.failures - 1, 30));
    this.retryAt = Date.now() + delay;
    const changed = message !== this.lastError;
    this.lastError = message;
    if (!this.down || changed) {
      this.down = true;
      this.ctx.logger.warn(
        { source: this.config.name, url: this.target.url, error: message, retryInMs: delay },
        `${this.label}: ${message}; lookups fail until it answers again`,
      );
    }
  }

  private dispose(live: Live): void {
    live.socket.destroy();
  }

  /** Opens the socket (TCP or TLS), upgrades it with StartTLS when asked, and binds. */
  private async open(): Promise<Live> {
    const timeoutMs = this.config.timeoutMs;
    const socket = await this.openSocket(timeoutMs);
    let handedOver = false;
    // ldapts connects lazily through these factories; handing it our open socket once, and
    // refusing any later call, means it can never reconnect on its own (without our bind).
    const once = <T>(): T => {
      if (handedOver) throw new Error("connection lost");
      handedOver = true;
      return socket as T;
    };
    const client = new Client({
      url: this.target.url,
      timeout: timeoutMs,
      connectTimeout: timeoutMs,
      ...(this.target.secure ? { createSecureConnection: once } : { createConnection: once }),
    });
    const live: Live = { client, socket };
    socket.once("close", () => {
      if (this.live === live) this.lost("the server closed the connection");
    });
    try {
      if (this.config.startTls && !this.target.secure) {
        try {
          await client.startTLS({ ...this.tlsOptions });
        } catch (error) {
          throw new LdapLookupError(
            `StartTLS with ${this.target.url} failed: ${describe(error)}`,
            resultCodeOf(error),
          );
        }
      }
      if (this.config.bindDn !== undefined) {
        try {
          await client.bind(this.config.bindDn, this.password ?? "");
        } catch (error) {
          throw new LdapLookupError(
            `bind to ${this.target.url} as ${this.config.bindDn} failed: ${describe(error)}`,
            resultCodeOf(error),
          );
        }
      } else if (!client.isConnected) {
        // Anonymous and no StartTLS: let ldapts take the socket now (the first search would anyway).
        await client.exop("1.3.6.1.4.1.4203.1.11.3").catch((error: unknown) => {
          // "Who am I?" may be refused or unknown; only a dead connection matters here.
          if (!client.isConnected) throw error;
        });
      }
      if (!client.isConnected) throw new Error("the server closed the connection");
      return live;
    } catch (error) {
      socket.destroy();
      throw error;
    }
  }

  private openSocket(timeoutMs: number): Promise<Socket> {
    const { host, port, secure, url } = this.target;
    const socket: Socket = secure
      ? tlsConnect({ ...this.tlsOptions, port, host })
      : netConnect({ port, host, noDelay: true });
    const connected = new Promise<Socket>((resolveSocket, reject) => {
      socket.once(secure ? "secureConnect" : "connect", () => {
        socket.removeAllListeners("error");
        // ldapts adds its own handlers; this one keeps a late error from being unhandled.
        socket.on("error", () => {});
        resolveSocket(socket);
      });
      socket.once("error", (error) => {
        socket.destroy();
        reject(new LdapLookupError(`cannot connect to ${url}: ${describe(error)}`));
      });
    });
    return withDeadline(connected, {
      ms: timeoutMs,
      onTimeout: () => {
        socket.destroy();
        throw new LdapLookupError(`cannot connect to ${url}: no answer within ${timeoutMs} ms`);
      },
    });
  }
}

// --- The source ----------------------------------------------------------------------------------

export async function createLdapSource(
  config: LdapSourceConfig,
  ctx: SourceContext,
  options: LdapSourceOptions = {},
): Promise<TableSource> {
  const label = `ldap source '${config.name}'`;
  const target = parseUrl(config.name, config.url);
  if (
    config.bindDn === undefined &&
    (config.passwordFile !== undefined || config.passwordEnv !== undefined)
  ) {
    ctx.logger.warn(
      { source: config.name },
      `${label}: a password is set but no bind_dn; binding anonymously`,
    );
  }
  const password = await readBindPassword(config, ctx.configPath);
  // A table whose filter cannot be parsed is a configuration error, found now rather than per lookup.
  for (const [table, template] of config.tables) {
    try {
      lookupFilter(template.text, "probe@example.org", config.recipientDelimiter);
    } catch (error) {
      throw new Error(
        `${label}: table '${table}' has an invalid LDAP filter ${template.text}: ${describe(error)}`,
      );
    }
  }
  const connection = new LdapConnection(config, target, password, ctx, options);
  const timeLimit = Math.max(1, Math.ceil(config.timeoutMs / 1000));

  async function search(table: string | undefined, key: string, signal: AbortSignal, want: "has" | "get") {
    if (table === undefined) throw new LdapLookupError(`${label}: a lookup must name one of its tables`);
    const template = config.tables.get(table);
    if (template === undefined) throw new LdapLookupError(`${label}: no table '${table}'`);
    if (signal.aborted) throw new LdapLookupError(`${label}: lookup in '${table}' aborted before it started`);
    const filter = lookupFilter(template.text, key, config.recipientDelimiter);
    const client = await connection.acquire(signal);
    const attributes =
      want === "get" && config.resultAttribute !== undefined ? [config.resultAttribute] : ["1.1"];
    // acquire() checked the connection in this same tick, so ldapts sends on it (no reconnect).
    const work = client.search(config.base, {
      scope: "sub",
      filter,
      sizeLimit: SEARCH_SIZE_LIMIT,
      timeLimit,
      attributes,
      derefAliases: "never",
    });
    try {
      const result = await untilAborted(work, signal, () => `${label}: search in '${table}'`);
      return result.searchEntries;
    } catch (error) {
      if (error instanceof LdapLookupError) throw error; // aborted: the search goes on, and ends by its timeout
      const message = connection.scrub(`search in '${table}' failed: ${describe(error)}`);
      // A result code is the server's answer on a working connection; anything else (socket
      // error, closed, timed out, garbled) means the connection is gone or not to be trusted.
      if (!(error instanceof ResultCodeError) || !client.isConnected) connection.broken(client, message);
      throw new LdapLookupError(`${label}: ${message}`, resultCodeOf(error));
    }
  }

  return {
    kind: "table",
    async has(table, key, signal) {
      if (key === "") return false;
      const entries = await search(table, key, signal, "has");
      return entries.length > 0;
    },
    async get(table, key, signal) {
      if (key === "") return undefined;
      const entries = await search(table, key, signal, "get");
      const first = entries[0];
      if (first === undefined) return undefined;
      return config.resultAttribute === undefined ? first.dn : attributeValue(first, config.resultAttribute);
    },
    close: () => connection.close(),
  };
}

/** The first value of an attribute (names compare case-insensitively); "" when the entry has none. */
function attributeValue(entry: Entry, attribute: string): string {
  const wanted = attribute.toLowerCase();
  for (const [name, value] of Object.entries(entry)) {
    if (name === "dn" || name.toLowerCase() !== wanted) continue;
    const first = Array.isArray(value) ? value[0] : value;
    if (first === undefined) return "";
    return Buffer.isBuffer(first) ? first.toString("utf8") : first;
  }
  return "";
}
