// A small typed client of the Genesis command service: the types are generated from its OpenAPI document
// (src/schema.ts, by openapi-typescript), the calls go through openapi-fetch, every send carries an
// Idempotency-Key, and refusals are typed errors (src/errors.ts). The event stream is in src/stream.ts.
import createClient, { type Client } from "openapi-fetch";

import { toError } from "./errors.js";
import type { components, paths } from "./schema.js";

export { DuplicateCommand, GenesisError, toError } from "./errors.js";
export type { DuplicateCommandBody, ErrorBody, ErrorCode } from "./errors.js";
export { followSession } from "./stream.js";
export type { EventSourceLike, FollowOptions, StreamState, TaskProgress } from "./stream.js";
export type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type Session = Schemas["Session"];
export type Command = Schemas["Command"];
export type CommandRequest = Schemas["CommandRequest"];
export type CommandType = CommandRequest["command_type"];
export type CommandAccepted = Schemas["CommandAccepted"];
export type CommandCompleted = Schemas["CommandCompleted"];
export type GenesisEvent = Schemas["Event"];
export type EventType = GenesisEvent["event_type"];
export type EventPage = Schemas["EventPage"];
export type StreamToken = Schemas["StreamToken"];

// What a send answered: 200 for a sync command (with the session), 202 for an async one (with its status URL);
// `replayed` when the Idempotency-Key had been used for the same command before.
export type Sent =
  | { status: 200; body: CommandCompleted; idempotencyKey: string; replayed: boolean }
  | { status: 202; body: CommandAccepted; idempotencyKey: string; replayed: boolean; location: string };

export interface GenesisOptions {
  baseUrl: string;
  // The access token (a JWT): asked before every request, so the caller can renew it when it expires.
  token: () => string | Promise<string>;
  fetch?: typeof globalThis.fetch;
  newKey?: () => string; // a fresh Idempotency-Key; crypto.randomUUID() by default
}

export interface Genesis {
  readonly baseUrl: string;
  readonly http: Client<paths>; // the typed openapi-fetch client, for anything the methods below leave out
  createSession(): Promise<Session>;
  getSession(sessionId: string): Promise<Session>;
  send(sessionId: string, command: CommandRequest, options?: { idempotencyKey?: string }): Promise<Sent>;
  getCommand(sessionId: string, commandId: string): Promise<Command>;
  events(sessionId: string, query?: { after?: number; limit?: number }): Promise<EventPage>;
  streamToken(sessionId: string): Promise<StreamToken>;
}

interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

function unwrap<T>({ data, error, response }: Answer<T>): T {
  if (!response.ok || data === undefined) throw toError(response.status, error);
  return data;
}

export function createGenesisClient(options: GenesisOptions): Genesis {
  const baseUrl = options.baseUrl.replace(/\/$/, "");
  const http = createClient<paths>({ baseUrl, ...(options.fetch ? { fetch: options.fetch } : {}) });
  http.use({
    async onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${await options.token()}`);
      return request;
    },
  });
  const newKey = options.newKey ?? (() => crypto.randomUUID());
  const session = (sessionId: string) => ({ params: { path: { session_id: sessionId } } });

  return {
    baseUrl,
    http,
    async createSession() {
      return unwrap(await http.POST("/genesis/sessions", { body: {} }));
    },
    async getSession(sessionId) {
      return unwrap(await http.GET("/genesis/sessions/{session_id}", session(sessionId)));
    },
    async send(sessionId, command, { idempotencyKey = newKey() } = {}) {
      const answer = await http.POST("/genesis/sessions/{session_id}/commands", {
        params: { path: { session_id: sessionId }, header: { "Idempotency-Key": idempotencyKey } },
        body: command,
      });
      const body = unwrap<CommandCompleted | CommandAccepted>(answer);
      const replayed = answer.response.headers.get("Idempotent-Replayed") === "true";
      if (answer.response.status === 202) {
        const location = answer.response.headers.get("Location") ?? "";
        return { status: 202, body: body as CommandAccepted, idempotencyKey, replayed, location };
      }
      return { status: 200, body: body as CommandCompleted, idempotencyKey, replayed };
    },
    async getCommand(sessionId, commandId) {
      const path = { session_id: sessionId, command_id: commandId };
      return unwrap(await http.GET("/genesis/sessions/{session_id}/commands/{command_id}", { params: { path } }));
    },
    async events(sessionId, query = {}) {
      const params = { path: { session_id: sessionId }, query };
      return unwrap(await http.GET("/genesis/sessions/{session_id}/events", { params }));
    },
    async streamToken(sessionId) {
      return unwrap(await http.POST("/genesis/sessions/{session_id}/stream-tokens", session(sessionId)));
    },
  };
}
