export {
  GenServer,
  type CallProtocol,
  type CallResult,
  type From,
  type GenServerSpec,
  type ReplyOf,
  type ServerPid,
  type StartOptions,
  type StateResult,
} from './GenServer.js';
