// Live events over the browser's native EventSource (CONTRACT §5). EventSource cannot send an Authorization header,
// so each connection first asks for a stream token (POST …/stream-tokens, with the bearer token) and opens
// …/events/stream?stream_token=…&after=<the last id seen>. The browser's own reconnect would reuse that URL, whose
// token opens a stream for a minute only, so on any error or end this class closes the EventSource and opens a new
// one with a fresh token, resuming after the last id: nothing is missed, nothing is shown twice.

const RETRY_MIN = 250;
const RETRY_MAX = 10000;

// Callbacks: mintToken() → {response, json} of POST …/stream-tokens; renewToken() (optional, async, true when it got
// a fresh access token) is asked once when minting answers 401; onMessage({id, event, data}); onState(state, detail).
// States: connecting, live, reconnecting, error, closed. eventTypes: every event name the stream can send (an
// EventSource delivers a named event only to a listener of that name).
export class EventStream {
  constructor(url, { mintToken, eventTypes, onMessage, onState = () => {}, renewToken = null }) {
    this.url = url;
    this.mintToken = mintToken;
    this.eventTypes = eventTypes;
    this.onMessage = onMessage;
    this.onState = onState;
    this.renewToken = renewToken;
    this.lastEventId = null;
    this.running = false;
    this.source = null;
    this.timer = null;
    this.delay = RETRY_MIN;
  }

  start(lastEventId = null) {
    this.lastEventId = lastEventId;
    this.running = true;
    this.connect(false);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  emit(state, detail = "") {
    if (this.running || state === "closed") this.onState(state, detail);
  }

  resumePoint() { return this.lastEventId === null ? "from the start" : `after #${this.lastEventId}`; }

  async connect(renewed) {
    if (!this.running) return;
    this.emit("connecting", this.resumePoint());
    let minted;
    try {
      minted = await this.mintToken();
    } catch (err) {
      return this.retry(`${err.message || err}`);
    }
    if (!this.running) return;
    const { response, json } = minted;
    if (!response.ok || !json) {
      this.emit("error", `stream token: ${response.status}`);
      if (response.status === 401 && this.renewToken && !renewed && (await this.renewToken())) {
        return this.connect(true); // the access token expired: once more with the fresh one
      }
      if (response.status === 401 || response.status === 404) return this.close(); // retrying cannot help
      return this.retry(`stream token: ${response.status}`);
    }
    let url = `${this.url}?stream_token=${encodeURIComponent(json.stream_token)}`;
    if (this.lastEventId !== null) url += `&after=${encodeURIComponent(this.lastEventId)}`;
    this.open(url);
  }

  open(url) {
    const source = new EventSource(url);
    this.source = source;
    const deliver = (e) => {
      if (source !== this.source) return;
      if (e.lastEventId) this.lastEventId = e.lastEventId;
      this.onMessage({ id: e.lastEventId || null, event: e.type, data: e.data });
    };
    source.onopen = () => {
      if (source !== this.source) return;
      this.delay = RETRY_MIN;
      this.emit("live", this.resumePoint());
    };
    source.onmessage = deliver; // an unnamed event, should one come
    for (const name of [...this.eventTypes, "task-progress", "overflow"]) source.addEventListener(name, deliver);
    // At the access token's exp the server says so and ends the stream: come back with a fresh token at once.
    source.addEventListener("token-expired", () => source === this.source && this.reconnect("token expired", 0));
    // The server ended the stream, the connection failed, or it was refused: a fresh token, from the last id.
    source.onerror = () => source === this.source && this.reconnect("stream ended");
  }

  reconnect(why, delay = this.delay) {
    if (this.source) this.source.close();
    this.source = null;
    this.retry(why, delay);
  }

  retry(why, delay = this.delay) {
    if (!this.running) return;
    this.emit("reconnecting", `${why}; resuming ${this.resumePoint()}`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(false), delay);
    this.delay = Math.min(Math.max(this.delay, RETRY_MIN) * 2, RETRY_MAX);
  }

  close() {
    this.running = false;
    this.emit("closed");
  }
}
