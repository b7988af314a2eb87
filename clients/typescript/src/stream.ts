// A session's events live, on the browser's native EventSource (CONTRACT §5). EventSource cannot send an
// Authorization header, so each connection first gets a stream token (POST …/stream-tokens) and opens
// …/events/stream?stream_token=…&after=<the last id seen>. EventSource would reconnect by itself with the same URL,
// whose token opens a stream for a minute only; so on any error or end of the stream (the server ends it at the
// access token's exp, or when the client falls behind) this helper closes it and opens a new one with a fresh token,
// after the last id: nothing missed, nothing twice. `?after=` is the Last-Event-ID resume (the server takes either,
// CONTRACT §5): a new EventSource cannot set that header.
import { GenesisError } from "./errors.js";
import { eventEvent_typeValues, type components } from "./schema.js";

type GenesisEvent = components["schemas"]["Event"];

export interface TaskProgress {
  command_id: string;
  progress: number;
  message: string;
}

export type StreamState = "connecting" | "live" | "reconnecting" | "closed";

// The part of EventSource this helper uses: the browser's, or in Node the `eventsource` package's.
export interface EventSourceLike {
  onopen: ((event: Event) => void) | null;
  onerror: ((event: Event) => void) | null;
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void;
  close(): void;
}

export interface FollowOptions {
  after?: number; // the sequence of the last event already seen
  onEvent: (event: GenesisEvent) => void;
  onProgress?: (progress: TaskProgress) => void;
  onState?: (state: StreamState, detail: string) => void;
  // Stops following when it returns false (a 401/404 minting a token, by default: retrying cannot help).
  onError?: (error: GenesisError) => boolean;
  EventSource?: new (url: string) => EventSourceLike;
  retryMs?: { min: number; max: number };
}

interface StreamClient {
  readonly baseUrl: string;
  streamToken(sessionId: string): Promise<{ stream_token: string }>;
}

export function followSession(client: StreamClient, sessionId: string, options: FollowOptions): { close(): void } {
  const Source = options.EventSource ?? (globalThis.EventSource as unknown as new (url: string) => EventSourceLike);
  const retry = options.retryMs ?? { min: 250, max: 10_000 };
  const onState = options.onState ?? (() => {});
  const giveUp = options.onError ?? ((e: GenesisError) => e.status !== 401 && e.status !== 404);
  const url = `${client.baseUrl}/genesis/sessions/${encodeURIComponent(sessionId)}/events/stream`;
  let last = options.after ?? null;
  let source: EventSourceLike | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let delay = retry.min;
  let running = true;

  const from = () => (last === null ? "from the start" : `after #${last}`);

  async function connect(): Promise<void> {
    if (!running) return;
    onState("connecting", from());
    let token: string;
    try {
      token = (await client.streamToken(sessionId)).stream_token;
    } catch (error) {
      if (error instanceof GenesisError && !giveUp(error)) return close();
      return again(`stream token: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!running) return;
    const query = `?stream_token=${encodeURIComponent(token)}` + (last === null ? "" : `&after=${last}`);
    const opened = new Source(url + query);
    source = opened;
    const mine = () => opened === source;
    opened.onopen = () => {
      if (!mine()) return;
      delay = retry.min;
      onState("live", from());
    };
    const onDomainEvent = (message: MessageEvent<string>) => {
      if (!mine()) return;
      const event = JSON.parse(message.data) as GenesisEvent;
      if (last !== null && event.sequence <= last) return; // already seen
      last = event.sequence;
      options.onEvent(event);
    };
    for (const name of eventEvent_typeValues) opened.addEventListener(name, onDomainEvent);
    opened.addEventListener("task-progress", (message) => {
      if (mine()) options.onProgress?.(JSON.parse(message.data) as TaskProgress);
    });
    // The access token expired (`token-expired`) or the client fell behind (`overflow`): the server ends the
    // stream; come back at once with a fresh token.
    opened.addEventListener("token-expired", () => mine() && reopen("the access token expired", 0));
    opened.addEventListener("overflow", () => mine() && reopen("fell behind", 0));
    opened.onerror = () => mine() && reopen("the stream ended", delay);
  }

  function reopen(why: string, wait: number): void {
    source?.close();
    source = null;
    again(why, wait);
  }

  function again(why: string, wait = delay): void {
    if (!running) return;
    onState("reconnecting", `${why}; resuming ${from()}`);
    clearTimeout(timer);
    timer = setTimeout(() => void connect(), wait);
    delay = Math.min(delay * 2, retry.max);
  }

  function close(): void {
    if (!running) return;
    running = false;
    clearTimeout(timer);
    source?.close();
    source = null;
    onState("closed", from());
  }

  void connect();
  return { close };
}
