// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the console
// reads the stream itself, parses the text/event-stream format and reconnects with Last-Event-ID.

const RETRY_MIN = 250;
const RETRY_MAX = 10000;

// Turns chunks of text into messages {id, event, data}; comments (": heartbeat") go to onComment.
export class SseParser {
  constructor(onMessage, onComment = () => {}) {
    this.onMessage = onMessage;
    this.onComment = onComment;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.data = [];
    this.event = "";
    this.id = null;
  }

  push(text) {
    const buf = this.buffer + text;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if (c !== "\n" && c !== "\r") continue;
      if (c === "\r" && i + 1 === buf.length) break; // maybe half of a CRLF: wait for the next chunk
      this.line(buf.slice(start, i));
      if (c === "\r" && buf[i + 1] === "\n") i++;
      start = i + 1;
    }
    this.buffer = buf.slice(start);
  }

  line(text) {
    if (text === "") {
      if (this.data.length > 0) {
        this.onMessage({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      }
      this.reset();
      return;
    }
    if (text.startsWith(":")) {
      this.onComment(text.slice(1).trim());
      return;
    }
    const colon = text.indexOf(":");
    const name = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) this.id = value;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One live subscription. Callbacks: onMessage(msg), onState(state, detail), onComment(text).
// States: connecting, live, reconnecting, error, closed. After the stream ends (the server ends a
// slow client's stream with `event: overflow`, and every stream at its token's exp with
// `event: token-expired`) or fails, it reconnects from the last id it saw. renewToken (optional,
// async, true when it got a fresh token) is asked once when the server answers 401.
export class EventStream {
  constructor(url, { authorization, onMessage, onState = () => {}, onComment = () => {}, renewToken = null }) {
    this.url = url;
    this.authorization = authorization;
    this.renewToken = renewToken;
    this.onMessage = onMessage;
    this.onState = onState;
    this.onComment = onComment;
    this.lastEventId = null;
    this.running = false;
    this.controller = null;
  }

  start(lastEventId = null) {
    this.lastEventId = lastEventId;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
  }

  emit(state, detail = "") {
    if (this.running || state === "closed") this.onState(state, detail);
  }

  async loop() {
    let delay = RETRY_MIN;
    let renewed = false;
    while (this.running) {
      this.controller = new AbortController();
      try {
        const headers = { Accept: "text/event-stream", Authorization: this.authorization() };
        if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
        this.emit("connecting", this.lastEventId === null ? "from the start" : `after #${this.lastEventId}`);
        const response = await fetch(this.url, { headers, signal: this.controller.signal, cache: "no-store" });
        if (!response.ok) {
          const body = await response.text();
          this.emit("error", `${response.status} ${body}`);
          if (response.status === 401 && this.renewToken && !renewed && (await this.renewToken())) {
            renewed = true; // the token expired: once more with the fresh one, from the last id
            continue;
          }
          if (response.status === 401 || response.status === 404) break; // retrying cannot help
        } else {
          this.emit("live");
          delay = RETRY_MIN;
          renewed = false;
          await this.read(response.body);
          this.emit("reconnecting", `stream ended; resuming after #${this.lastEventId ?? 0}`);
        }
      } catch (err) {
        if (!this.running) break;
        this.emit("reconnecting", `${err.message || err}; resuming after #${this.lastEventId ?? 0}`);
      }
      if (!this.running) break;
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX);
    }
    const stoppedByUs = !this.running;
    this.running = false;
    if (!stoppedByUs) this.emit("closed");
  }

  async read(body) {
    const parser = new SseParser(
      (message) => {
        if (!this.running) return;
        if (message.event === "token-expired") return; // the stream ends; the reconnect renews the token
        if (message.id !== null) this.lastEventId = message.id;
        this.onMessage(message);
      },
      (text) => this.running && this.onComment(text),
    );
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.push(value);
    }
  }
}
