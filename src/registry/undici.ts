/**
 * The three parts of undici ocitool uses (Agent, ProxyAgent, the request API), imported from their own
 * modules: undici's index also loads fetch, WebSocket, caches and mocks, which cost ~50 ms of start-up
 * on every registry command. undici has no `exports` map, so these paths are public; the lockfile pins
 * the version, and every registry test goes through them. Imported statically, they go into the esbuild
 * bundle (one file read instead of ~40 CommonJS modules: ~15 ms less start-up).
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import DispatcherClass from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import ProxyAgentClass from 'undici/lib/dispatcher/proxy-agent.js';

// As undici's index does: the request/connect/stream methods live on Dispatcher.prototype (ProxyAgent
// uses connect() for its CONNECT tunnels).
Object.assign(DispatcherClass.prototype, api);

export const Agent = AgentClass;
export const ProxyAgent = ProxyAgentClass;
const apiRequest = api.request as (this: Dispatcher, opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

export type { Dispatcher };

export interface RequestInit {
  method: Dispatcher.HttpMethod;
  headers: Record<string, string>;
  body?: Buffer | string | Readable;
  signal?: AbortSignal;
  /** Silence allowed after the request was sent, until the answer's headers are complete (ms). */
  headersTimeout: number;
  /** Silence allowed between two chunks of the answer's body (ms). */
  bodyTimeout: number;
  dispatcher: Dispatcher;
}

/** undici's `request(url, …)`, on the given dispatcher. */
export function request(url: URL, init: RequestInit): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = init;
  return apiRequest.call(dispatcher, { ...rest, origin: url.origin, path: `${url.pathname}${url.search}` });
}
