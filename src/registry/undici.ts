/**
 * The three parts of undici ocitool uses (Agent, ProxyAgent, the request API), loaded from their own
 * modules: undici's index also loads fetch, WebSocket, caches and mocks, which cost ~50 ms of start-up
 * on every registry command. undici has no `exports` map, so these paths are public; the lockfile pins
 * the version, and every registry test goes through them.
 */
import { createRequire } from 'node:module';
import type { Agent as AgentT, Dispatcher, ProxyAgent as ProxyAgentT } from 'undici';

const require = createRequire(import.meta.url);

// As undici's index does: the request/connect/stream methods live on Dispatcher.prototype (ProxyAgent
// uses connect() for its CONNECT tunnels).
const DispatcherClass = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
const api = require('undici/lib/api/index.js') as Record<string, unknown>;
Object.assign(DispatcherClass.prototype, api);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof AgentT;
export const ProxyAgent = require('undici/lib/dispatcher/proxy-agent.js') as typeof ProxyAgentT;
const apiRequest = api.request as (this: Dispatcher, opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

export type { Dispatcher };

export interface RequestInit {
  method: Dispatcher.HttpMethod;
  headers: Record<string, string>;
  body?: Buffer | string;
  signal?: AbortSignal;
  dispatcher: Dispatcher;
}

/** undici's `request(url, …)`, on the given dispatcher. */
export function request(url: URL, init: RequestInit): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = init;
  return apiRequest.call(dispatcher, { ...rest, origin: url.origin, path: `${url.pathname}${url.search}` });
}
