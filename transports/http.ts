/**
 * The two pieces of undici skiff's HTTP clients use (the registry and the Docker daemon): Agent and request.
 * undici's entry module also loads fetch, WebSocket, EventSource and caches, ~60 ms of every registry command's
 * start-up; its Agent and request modules alone load in ~20 ms. (Pinned by package-lock; the tests exercise both.)
 */
import type { Dispatcher } from 'undici';
// Static imports, so the bundle (scripts/bundle.mjs) includes them: this module itself is loaded only when needed.
import AgentClass from 'undici/lib/dispatcher/agent.js';
import apiRequest from 'undici/lib/api/api-request.js';

export const Agent = AgentClass;
export type Agent = import('undici').Agent;

type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & { method?: Dispatcher.HttpMethod; dispatcher: Dispatcher | undefined };

/** undici's request(url, opts) with an explicit dispatcher: the same call its entry module makes. */
export function request(url: string | URL, opts: RequestOptions): Promise<Dispatcher.ResponseData> {
  const u = new URL(url);
  const { dispatcher, ...rest } = opts;
  if (!dispatcher) throw new Error(`internal error: a request to ${u.origin} without an HTTP agent`);
  return apiRequest.call(dispatcher, { ...rest, origin: u.origin, path: u.search ? `${u.pathname}${u.search}` : u.pathname, method: opts.method ?? (opts.body ? 'PUT' : 'GET') });
}
