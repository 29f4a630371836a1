/**
 * A Sendmail milter protocol (version 6) library: server, MTA-side client, codec.
 * It imports nothing from the rest of filterctl and can be used on its own.
 */
export { AddressError, formatListenAddress, type ListenAddress, parseListenAddress } from "./address.js";
export {
  type EndOfMessageResponse,
  type FinalResponse,
  MilterClient,
  MilterClientError,
  type MilterClientOptions,
  type ModificationResponse,
  type Offer,
} from "./client.js";
export {
  type ConnectFamily,
  type ConnectInfo,
  decodeCommand,
  decodeResponse,
  encodeCommand,
  type Frame,
  FrameReader,
  type MilterCommand,
  type MilterResponse,
  ProtocolError,
  packet,
} from "./codec.js";
export * from "./constants.js";
export type {
  ConnectionInfo,
  HandlerFactory,
  MilterHandler,
  MilterLogger,
  NegotiationWishes,
  SessionContext,
  StageInterest,
  StageResult,
} from "./handler.js";
export { silentLogger } from "./handler.js";
export { MacroTable } from "./macros.js";
export { type MtaMacros, macroListStage, POSTFIX_MACROS } from "./mta-macros.js";
export {
  actionFlagFor,
  CONTINUE,
  type EndOfMessageResult,
  encodeModification,
  encodeReply,
  formatReplyText,
  InvalidReply,
  type Modification,
  type Reply,
  reply,
  sanitizeReplyLine,
} from "./reply.js";
export { ListenError, MilterServer, type MilterServerOptions, removeStaleSocket } from "./server.js";
export type { Session } from "./session.js";
