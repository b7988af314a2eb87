// The Genesis developer console: a token, a session, commands from the served catalogue, live events.
// Plain DOM, no framework; every server value goes through textContent, never innerHTML.
import { EventStream } from "./sse.js";
import { dotted, field, short } from "./dom.js";
import { TaskList } from "./tasks.js";
import { renderWaiting } from "./waiting.js";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const store = window.sessionStorage; // per tab, gone when it closes: a pasted token does not linger
const ui = {
  token: $("token-input"), tokenInfo: $("token-info"), devUser: $("dev-user-input"),
  devButton: $("dev-token-button"), devStatus: $("dev-token-status"),
  sessionInput: $("session-id-input"), card: $("session-card"), steps: $("stage-steps"),
  commandType: $("command-type"), payload: $("payload-editor"), schema: $("payload-schema"),
  idem: $("idempotency-key"), send: $("send-command"),
  status: $("result-status"), request: $("result-request"), headers: $("result-headers"),
  body: $("result-body"), curl: $("result-curl"),
  streamState: $("stream-state"), streamDetail: $("stream-detail"), events: $("event-list"), tasks: $("task-list"),
};
const tasks = new TaskList(ui.tasks, (data) => note(`unreadable progress: ${data}`));
const state = {
  session: null, examples: {}, payloadSchemas: {}, stages: [], eventTypes: [], stream: null, lastSeq: 0,
};

// --- HTTP -------------------------------------------------------------------------------------

async function call(method, path, { body, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (ui.token.value.trim()) sent.Authorization = `Bearer ${ui.token.value.trim()}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const started = performance.now();
  const response = await fetch(path, { method, headers: sent, body, cache: "no-store" });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: shown as text */ }
  return { method, path, body, sent, response, text, json, ms: Math.round(performance.now() - started) };
}

function showResult(result) {
  const { response } = result;
  ui.status.textContent = String(response.status);
  ui.status.dataset.kind = response.ok ? "ok" : response.status >= 500 ? "fail" : "refused";
  ui.request.textContent = `${response.statusText} · ${result.method} ${result.path} · ${result.ms} ms`;
  const names = ["Location", "Idempotent-Replayed", "X-Request-ID", "WWW-Authenticate"];
  ui.headers.textContent = names.filter((n) => response.headers.has(n))
    .map((n) => `${n}: ${response.headers.get(n)}`).join("\n");
  ui.body.textContent = result.json !== null ? JSON.stringify(result.json, null, 2) : result.text;
  ui.curl.textContent = curl(result);
}

function showLocalError(message) {
  ui.status.textContent = "not sent";
  ui.status.dataset.kind = "refused";
  ui.request.textContent = "";
  ui.headers.textContent = "";
  ui.body.textContent = message;
  ui.curl.textContent = "";
}

const quote = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

function curl({ method, path, body, sent }) {
  const parts = [`curl -i -X ${method} ${quote(location.origin + path)}`];
  for (const [name, value] of Object.entries(sent)) {
    if (name === "Accept") continue;
    parts.push(`-H ${name === "Authorization" ? '"Authorization: Bearer $TOKEN"' : quote(`${name}: ${value}`)}`);
  }
  if (body !== undefined) parts.push(`-d ${quote(body)}`);
  return parts.join(" \\\n     ");
}

// --- token ------------------------------------------------------------------------------------

function describeToken() {
  const token = ui.token.value.trim();
  store.setItem("console.token", token);
  if (!token) {
    ui.tokenInfo.textContent = "No token yet.";
    return;
  }
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
    const left = Math.round((claims.exp * 1000 - Date.now()) / 60000);
    const when = left > 0 ? `expires in ${left} min` : "EXPIRED";
    ui.tokenInfo.textContent = `user (sub): ${claims.sub} · ${when}`;
  } catch {
    ui.tokenInfo.textContent = "This does not look like a JWT; the server will say 401.";
  }
}

async function getDevToken() {
  const result = await call("POST", "/console/token", { body: JSON.stringify({ user: ui.devUser.value.trim() }) });
  if (result.response.status === 404) {
    ui.devStatus.textContent = "The server is not in development mode (GENESIS_DEV=1). "
      + "Paste a token instead, e.g. from `genesis token --user NAME`.";
    ui.devButton.disabled = true;
  } else if (result.response.ok && result.json) {
    ui.token.value = result.json.token;
    ui.devStatus.textContent = `Got a token for ${result.json.user}.`;
    describeToken();
  } else {
    showResult(result);
  }
}

// A stream's token expired: in development mode a fresh one for the same user, so the stream resumes.
async function renewDevToken() {
  let user = ui.devUser.value.trim();
  try {
    const part = ui.token.value.trim().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    user = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="))).sub || user;
  } catch { /* not a JWT: the dev user field's name */ }
  const result = await call("POST", "/console/token", { body: JSON.stringify({ user }) });
  if (!result.response.ok || !result.json) return false;
  ui.token.value = result.json.token;
  describeToken();
  return true;
}

// --- session ----------------------------------------------------------------------------------

function renderSession(session) {
  state.session = session;
  ui.card.hidden = false;
  $("session-id").textContent = session.id;
  $("session-status").textContent = session.status;
  $("session-stage").textContent = session.stage;
  $("session-version").textContent = String(session.version);
  ui.steps.replaceChildren(...state.stages.map((stage, i) => {
    const li = document.createElement("li");
    li.textContent = stage;
    const current = state.stages.indexOf(session.stage);
    li.className = i < current ? "done" : i === current ? "current" : "";
    return li;
  }));
  renderWaiting($("session-waiting"), session.waiting || []);
  if (ui.commandType.value === "ConfirmStage" && !ui.payload.dataset.edited) resetPayload();
}

async function openSession(id, { show = true, restart = false } = {}) {
  const result = await call("GET", `/genesis/sessions/${encodeURIComponent(id)}`);
  if (show) showResult(result);
  if (!result.response.ok) return;
  const isNew = restart || !state.session || state.session.id !== result.json.id;
  renderSession(result.json);
  if (isNew) {
    store.setItem("console.session", result.json.id);
    ui.sessionInput.value = result.json.id;
    follow(result.json.id);
  }
}

async function createSession() {
  const result = await call("POST", "/genesis/sessions", { body: "{}" });
  showResult(result);
  if (result.response.status === 201) await openSession(result.json.id, { show: false });
}

let refreshTimer = null;
function refreshSoon() { // events arrive in bursts; one GET for the burst
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => state.session && openSession(state.session.id, { show: false }), 150);
}

// --- commands ---------------------------------------------------------------------------------

async function loadCatalogue() {
  const doc = await (await fetch("/openapi.json")).json();
  const schemas = doc.components.schemas;
  state.stages = schemas.Session.properties.stage.enum;
  state.eventTypes = schemas.Event.properties.event_type.enum; // the stream's event names, for EventSource
  for (const example of schemas.CommandRequest.examples) {
    state.examples[example.command_type] = example.payload;
    state.payloadSchemas[example.command_type] = schemas[`${example.command_type}Payload`];
  }
  ui.commandType.replaceChildren(...Object.keys(state.examples).map((name) => new Option(name, name)));
  resetPayload();
}

function resetPayload() {
  const name = ui.commandType.value;
  const example = structuredClone(state.examples[name] ?? {});
  // The served example confirms the first stage; the useful example confirms the session's stage.
  if (state.session && "stage" in example) example.stage = state.session.stage;
  ui.payload.value = JSON.stringify(example, null, 2);
  delete ui.payload.dataset.edited;
  ui.schema.textContent = JSON.stringify(state.payloadSchemas[name] ?? {}, null, 2);
}

async function sendCommand() {
  if (!state.session) return showLocalError("Create or open a session first.");
  let payload;
  try {
    payload = JSON.parse(ui.payload.value || "{}");
  } catch (err) {
    return showLocalError(`The payload is not valid JSON: ${err.message}`);
  }
  const headers = ui.idem.value.trim() ? { "Idempotency-Key": ui.idem.value.trim() } : {};
  const body = JSON.stringify({ command_type: ui.commandType.value, payload });
  ui.send.disabled = true;
  try {
    showResult(await call("POST", `/genesis/sessions/${state.session.id}/commands`, { body, headers }));
    await openSession(state.session.id, { show: false });
  } finally {
    ui.send.disabled = false;
  }
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(12)); // randomUUID needs a secure context
  ui.idem.value = `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// --- live events ------------------------------------------------------------------------------

function setStreamState(name, detail = "") {
  ui.streamState.textContent = name;
  ui.streamState.dataset.state = name;
  if (detail) ui.streamDetail.textContent = detail;
}

function follow(sessionId) {
  if (state.stream) state.stream.stop();
  ui.events.replaceChildren();
  tasks.clear();
  state.lastSeq = 0;
  const stream = new EventStream(`/genesis/sessions/${sessionId}/events/stream`, {
    mintToken: () => call("POST", `/genesis/sessions/${sessionId}/stream-tokens`),
    eventTypes: state.eventTypes,
    onMessage: (message) => stream === state.stream && showMessage(message),
    onState: (name, detail) => stream === state.stream && setStreamState(name, detail),
    renewToken: renewDevToken,
  });
  state.stream = stream;
  stream.start();
}

function showMessage(message) {
  if (message.event === "task-progress") return tasks.progress(message);
  if (message.event === "overflow") {
    note("The server ended the stream (this client fell behind); resuming from the last id.");
    return;
  }
  let event;
  try { event = JSON.parse(message.data); } catch { return note(`unreadable message: ${message.data}`); }
  if (event.sequence <= state.lastSeq) return; // already shown
  state.lastSeq = event.sequence;
  setStreamState("live", `last event #${event.sequence} at ${clock()}`);
  if (event.payload && event.payload.command_id) tasks.settle(event.payload.command_id, event.event_type);
  ui.events.append(eventItem(event));
  ui.events.lastElementChild.scrollIntoView({ block: "nearest" });
  refreshSoon();
  landSoon();
}

// Where each shown event landed on Kafka: live events come at commit, before the relay sends them, so
// the list re-reads the events API (its `kafka` object) from the oldest event not yet on Kafka, while any is.
let landTimer = null;
function landSoon(delay = 300) {
  clearTimeout(landTimer);
  landTimer = setTimeout(guard(checkLanding), delay);
}

async function checkLanding() {
  const waiting = [...ui.events.querySelectorAll('li[data-landed="no"]')];
  if (!waiting.length || !state.session) return;
  const after = Math.min(...waiting.map((li) => Number(li.dataset.sequence))) - 1;
  const { response, json } = await call("GET", `/genesis/sessions/${state.session.id}/events?after=${after}&limit=500`);
  if (!response.ok || !json) return landSoon(2000);
  for (const event of json.events) {
    const li = ui.events.querySelector(`li[data-sequence="${event.sequence}"]`);
    if (li && event.kafka) showLanding(li, event.kafka);
  }
  if (ui.events.querySelector('li[data-landed="no"]')) landSoon(1000);
}

function showLanding(li, kafka) {
  const where = li.querySelector('[data-field="kafka"]');
  li.dataset.landed = kafka ? "yes" : "no";
  where.textContent = kafka ? `on Kafka: partition ${kafka.partition}, offset ${kafka.offset}` : "not on Kafka yet";
}

function eventItem(event) {
  const li = document.createElement("li");
  li.dataset.testid = "event";
  li.dataset.eventType = event.event_type;
  li.dataset.sequence = String(event.sequence);
  const head = document.createElement("div");
  head.className = "event-head";
  head.append(
    field("sequence", `#${event.sequence}`, "sequence"),
    dotted(field("event_type", event.event_type, "type")),
    field("aggregate_version", `v${event.aggregate_version}`, "aggregate_version"),
  );
  const ids = document.createElement("div");
  ids.className = "event-ids";
  ids.append(
    field("causation_id", `caused by ${short(event.causation_id)}`, "causation_id", event.causation_id || "first event"),
    field("event_id", `event ${short(event.event_id)}`, "event_id", event.event_id),
    field("correlation_id", `command ${short(event.correlation_id)}`, "correlation_id", event.correlation_id || ""),
    field("created_at", new Date(event.created_at).toLocaleTimeString(), "created_at", event.created_at),
    field("kafka", "", "kafka", "where the relay's record landed (GET …/events: kafka)"),
  );
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "JSON";
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(event, null, 2);
  details.append(summary, pre);
  li.append(head, ids);
  const concepts = event.payload && event.payload.result && event.payload.result.concepts;
  if (Array.isArray(concepts)) { // what an agent proposed, readable without opening the JSON
    const list = document.createElement("ul");
    list.className = "concepts";
    list.dataset.testid = "concepts";
    list.replaceChildren(...concepts.map((c) => {
      const item = document.createElement("li");
      item.textContent = c && typeof c === "object" ? `${c.title ?? ""} — ${c.logline ?? ""}` : String(c);
      return item;
    }));
    li.append(list);
  }
  li.append(details);
  showLanding(li, event.kafka);
  return li;
}

function note(text) {
  const li = document.createElement("li");
  li.className = "note";
  li.dataset.testid = "stream-note";
  li.textContent = text;
  ui.events.append(li);
}

const clock = () => new Date().toLocaleTimeString();

// --- wiring -----------------------------------------------------------------------------------

function guard(fn) { // a network failure shows in the response panel rather than vanishing
  return async (...args) => {
    try { await fn(...args); } catch (err) { showLocalError(`Request failed: ${err.message || err}`); }
  };
}

ui.token.addEventListener("input", describeToken);
ui.devButton.addEventListener("click", guard(getDevToken));
$("create-session").addEventListener("click", guard(createSession));
$("open-session").addEventListener("click", guard(() => openSession(ui.sessionInput.value.trim(), { restart: true })));
$("refresh-session").addEventListener("click", guard(() => state.session && openSession(state.session.id)));
ui.commandType.addEventListener("change", resetPayload);
ui.payload.addEventListener("input", () => { ui.payload.dataset.edited = "1"; });
$("reset-payload").addEventListener("click", resetPayload);
$("new-key").addEventListener("click", newKey);
ui.send.addEventListener("click", guard(sendCommand));
$("clear-events").addEventListener("click", () => ui.events.replaceChildren());

ui.token.value = store.getItem("console.token") || "";
describeToken();
guard(async () => {
  await loadCatalogue();
  document.body.dataset.ready = "1"; // the catalogue is in: tests and humans may start
  const last = store.getItem("console.session");
  if (last && ui.token.value.trim()) await openSession(last, { show: false });
})();
