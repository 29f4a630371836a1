/**
 * The listening side: accepts MTA connections on a TCP or unix socket, gives each one a
 * Session with a fresh handler, bounds how many run at once, and drains on shutdown.
 */
import { EventEmitter } from "node:events";
import { chmod, lstat, unlink } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { AddressError, formatListenAddress, type ListenAddress, parseListenAddress } from "./address.js";
import { InputBudget } from "./budget.js";
import {
  DEFAULT_MAX_BUFFERED_INPUT,
  DEFAULT_MAX_MACRO_BYTES,
  DEFAULT_MAX_PACKET_BYTES,
  DEFAULT_MAX_PENDING_NEGOTIATIONS,
  DEFAULT_NEGOTIATION_TIMEOUT_MS,
  DEFAULT_PACKET_TIMEOUT_MS,
  DEFAULT_WRITE_STALL_TIMEOUT_MS,
} from "./constants.js";
import { type HandlerFactory, type MilterLogger, silentLogger } from "./handler.js";
import type { Reply } from "./reply.js";
import { Session, type SessionEvents, type SessionOptions } from "./session.js";

export interface MilterServerOptions {
  /** Largest MTA packet accepted; larger ones close the connection. Default 1 MiB. */
  maxPacketBytes?: number;
  /** Concurrent MTA connections; more are closed at once (the MTA applies its default action). Default 4096. */
  maxConnections?: number;
  /** Time from accept to negotiation, absolute (bytes do not extend it). Default 10 s. */
  negotiationTimeoutMs?: number;
  /** Connections accepted and not yet negotiated; more are closed at once. Default 256. */
  maxPendingNegotiations?: number;
  /** Time from a packet's first byte to its last, absolute. Default 30 s. */
  packetTimeoutMs?: number;
  /** Unprocessed input held across all connections before reading pauses. Default 64 MiB. */
  maxBufferedInput?: number;
  /** Time the MTA may leave our replies unread before the connection is closed. Default 60 s. */
  writeStallTimeoutMs?: number;
  /** Characters of macro names and values kept per connection. Default 64 KiB. */
  maxMacroBytes?: number;
  /** Silence allowed on a negotiated connection. Default 15 min (longer than Postfix's smtpd_timeout). */
  idleTimeoutMs?: number;
  /** Time a handler may take for one event. Default 5 s (Sendmail waits 10 s per read). */
  handlerTimeoutMs?: number;
  /** Reply when a handler fails or hangs. Default tempfail. */
  fallback?: Reply;
  /** Mode of a unix socket file. Default 0o660. */
  socketMode?: number;
  /**
   * A cluster worker's socket: the primary process prepares the path (a stale socket removed),
   * binds it under its umask, sets its mode and removes it at the end; the worker only listens.
   */
  sharedSocket?: boolean;
  logger?: MilterLogger;
}

export interface MilterServerEvents {
  open: [session: Session];
  close: [session: Session];
  refused: [reason: string];
}

export class ListenError extends Error {}

export class MilterServer extends EventEmitter<MilterServerEvents> {
  private readonly sessions = new Set<Session>();
  private readonly server: Server;
  private readonly logger: MilterLogger;
  private nextId = 1;
  private listening: ListenAddress | undefined;
  private stopping = false;
  /** Connections accepted that have not negotiated yet. */
  private pending = 0;
  private readonly budget: InputBudget;
  private readonly sessionOptions: SessionOptions;
  private readonly sessionEvents: SessionEvents;

  constructor(
    private readonly createHandler: HandlerFactory,
    private readonly options: MilterServerOptions = {},
  ) {
    super();
    this.logger = options.logger ?? silentLogger;
    const logger = this.logger;
    this.budget = new InputBudget(options.maxBufferedInput ?? DEFAULT_MAX_BUFFERED_INPUT, (fields, message) =>
      logger.warn(fields, message),
    );
    this.sessionOptions = {
      maxPacketBytes: options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES,
      negotiationTimeoutMs: options.negotiationTimeoutMs ?? DEFAULT_NEGOTIATION_TIMEOUT_MS,
      packetTimeoutMs: options.packetTimeoutMs ?? DEFAULT_PACKET_TIMEOUT_MS,
      writeStallTimeoutMs: options.writeStallTimeoutMs ?? DEFAULT_WRITE_STALL_TIMEOUT_MS,
      idleTimeoutMs: options.idleTimeoutMs ?? 15 * 60_000,
      handlerTimeoutMs: options.handlerTimeoutMs ?? 5_000,
      maxMacroBytes: options.maxMacroBytes ?? DEFAULT_MAX_MACRO_BYTES,
      fallback: options.fallback ?? { action: "tempfail" },
      logger,
      budget: this.budget,
    };
    this.sessionEvents = {
      negotiated: () => {
        this.pending--;
      },
      closed: (closed) => {
        if (!closed.hasNegotiated) this.pending--;
        this.sessions.delete(closed);
        this.emit("close", closed);
      },
    };
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.on("error", (error) => this.logger.error({ err: error.message }, "listening socket error"));
  }

  get activeConnections(): number {
    return this.sessions.size;
  }

  /** Connections accepted that have not negotiated yet. */
  get pendingNegotiations(): number {
    return this.pending;
  }

  /** Unprocessed MTA input held now, across all connections (bytes). */
  get bufferedInput(): number {
    return this.budget.bytes;
  }

  /** The address actually bound (with the real port when 0 was asked for). */
  get address(): ListenAddress | undefined {
    const bound = this.server.address();
    if (this.listening?.kind === "tcp" && bound !== null && typeof bound === "object") {
      return { ...this.listening, port: bound.port };
    }
    return this.listening;
  }

  async listen(spec: string | ListenAddress): Promise<ListenAddress> {
    const address = typeof spec === "string" ? parseListenAddress(spec) : spec;
    if (address instanceof AddressError) throw new ListenError(address.message);
    const own = this.options.sharedSocket !== true;
    if (address.kind === "unix" && own) await removeStaleSocket(address.path);
    const socketMode = this.options.socketMode ?? 0o660;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        reject(
          new ListenError(`cannot listen on ${formatListenAddress(address)}: ${error.code ?? error.message}`),
        );
      };
      this.server.once("error", onError);
      const done = () => {
        this.server.off("error", onError);
        resolve();
      };
      if (address.kind === "unix") bindWithMode(socketMode, () => this.server.listen(address.path, done));
      else
        this.server.listen({ host: address.host, port: address.port, ipv6Only: address.family === 6 }, done);
    });
    this.listening = address;
    // Born with at most the mode; the umask may have masked bits the mode grants.
    if (address.kind === "unix" && own) await chmod(address.path, socketMode);
    const bound = this.address as ListenAddress;
    this.logger.info({ listen: formatListenAddress(bound) }, "milter listening");
    return bound;
  }

  /**
   * Stops accepting, lets connections in flight finish for up to `timeoutMs`, then closes
   * what is left. Resolves with how many connections had to be cut.
   */
  async shutdown(timeoutMs: number): Promise<{ cut: number }> {
    if (!this.stopping) {
      this.stopping = true;
      this.server.close();
    }
    // A connection that has not even negotiated has no session in flight: it need not hold the exit.
    for (const session of [...this.sessions]) if (!session.hasNegotiated) session.close();
    this.logger.info({ connections: this.sessions.size, timeoutMs }, "draining milter connections");
    const deadline = Date.now() + timeoutMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const cut = this.sessions.size;
    for (const session of [...this.sessions]) session.close();
    if (this.listening?.kind === "unix" && this.options.sharedSocket !== true)
      await unlink(this.listening.path).catch(() => {});
    return { cut };
  }

  private accept(socket: Socket): void {
    let peerName: string | undefined;
    const peer = (): string => {
      peerName ??= this.peerOf(socket);
      return peerName;
    };
    const reason = this.refusal();
    if (reason !== undefined) {
      this.logger.warn({ peer: peer() }, `refusing MTA connection: ${reason}`);
      this.emit("refused", reason);
      socket.destroy();
      return;
    }
    const id = this.nextId++;
    let handler: ReturnType<HandlerFactory>;
    try {
      handler = this.createHandler({
        id,
        get peer() {
          return peer();
        },
      });
    } catch (error) {
      this.logger.error(
        { conn: id, peer: peer(), err: String(error) },
        "could not create a handler; closing the connection",
      );
      socket.destroy();
      return;
    }
    this.pending++;
    const session = new Session(id, peer, socket, handler, this.sessionOptions, this.sessionEvents);
    this.sessions.add(session);
    this.emit("open", session);
  }

  /** Why a new connection is closed at once, or undefined when it may go on. */
  private refusal(): string | undefined {
    if (this.stopping) return "shutting down";
    const limit = this.options.maxConnections ?? 4096;
    if (this.sessions.size >= limit) return `connection limit of ${limit} reached`;
    const pendingLimit = this.options.maxPendingNegotiations ?? DEFAULT_MAX_PENDING_NEGOTIATIONS;
    if (this.pending >= pendingLimit) return `${pendingLimit} connections are already waiting to negotiate`;
    return undefined;
  }

  /** `address:port` (`[v6]:port`) of a TCP peer; the socket path for a unix one (it has no address). */
  private peerOf(socket: Socket): string {
    const address = socket.remoteAddress;
    if (address !== undefined)
      return address.includes(":") ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
    return this.listening?.kind === "unix" ? `unix:${this.listening.path}` : "local";
  }
}

/** A socket file left by a dead process is replaced; a live one, or any other file, is an error. */
export async function removeStaleSocket(path: string): Promise<void> {
  let stats: Awaited<ReturnType<typeof lstat>>;
  try {
    stats = await lstat(path);
  } catch {
    return;
  }
  if (!stats.isSocket())
    throw new ListenError(`cannot listen on unix:${path}: the file exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) throw new ListenError(`cannot listen on unix:${path}: another process is listening there`);
  await unlink(path);
}

/**
 * Runs `bind` (net.Server#listen on a path, which binds synchronously outside a cluster worker)
 * under a umask that also masks every bit `mode` lacks, so the socket file is born with at most
 * `mode`, even under umask 000: no moment where any local user may connect. The umask is
 * process-wide, so it only ever narrows, and only for this one synchronous call: a file another
 * thread creates meanwhile is at worst born narrower. (Binding in a private 0700 folder and
 * renaming would not touch process state, but needs a longer path, which sun_path's 107 bytes
 * may not hold, and leaves libuv unlinking the wrong name at close.)
 */
function bindWithMode(mode: number, bind: () => void): void {
  let previous: number | undefined;
  try {
    // Fully masked first, so the umask is never wider than before, not even between the two calls.
    previous = process.umask(0o777);
    process.umask(previous | (0o777 & ~mode));
  } catch {
    // Worker threads may not change the umask: the chmod after listening still sets the mode.
    previous = undefined;
  }
  try {
    bind();
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
}
