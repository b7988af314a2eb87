// Against a live API (tests/integration/clients/test_typescript_client.py starts it in development mode and passes
// GENESIS_API_URL and a short-lived GENESIS_TOKEN): a session, 202, 409 with the duplicate's id, a replay, the
// stream, and a stage advance; the stream outlives its access token by reconnecting with a fresh one.
import assert from "node:assert/strict";
import { test } from "node:test";

import { EventSource } from "eventsource";

import {
  createGenesisClient,
  DuplicateCommand,
  followSession,
  GenesisError,
  type EventSourceLike,
  type GenesisEvent,
  type StreamState,
} from "../src/index.js";

const base = process.env.GENESIS_API_URL ?? "";
const firstToken = process.env.GENESIS_TOKEN ?? "";

// The caller's token provider: the short-lived first token until it expires, then a fresh one (here from the
// development server's /console/token, as a frontend would refresh from its identity provider).
let current = firstToken;
async function token(): Promise<string> {
  const exp = JSON.parse(Buffer.from(current.split(".")[1] ?? "", "base64url").toString()).exp as number;
  if (exp * 1000 > Date.now() + 500) return current;
  const response = await fetch(`${base}/console/token`, { method: "POST", body: '{"user":"ts-client"}',
    headers: { "Content-Type": "application/json" } });
  current = ((await response.json()) as { token: string }).token;
  return current;
}

const sentKeys: string[] = [];
const recordingFetch: typeof fetch = async (input, init) => {
  const request = new Request(input, init);
  const key = request.headers.get("Idempotency-Key");
  if (key) sentKeys.push(key);
  return fetch(request);
};

const genesis = createGenesisClient({ baseUrl: base, token, fetch: recordingFetch });

function until<T>(what: string, check: () => T | undefined, ms = 20_000): Promise<T> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const look = () => {
      const found = check();
      if (found !== undefined) return resolve(found);
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(look, 20);
    };
    look();
  });
}

test("session, 202, 409 with the duplicate's id, a replay, the stream and a stage advance", { skip: !base }, async () => {
  const session = await genesis.createSession();
  assert.equal(session.stage, "CONCEPT_SELECTION");
  assert.deepEqual([session.is_pending, session.pending_commands], [false, []]);

  const seen: GenesisEvent[] = [];
  const states: StreamState[] = [];
  const stream = followSession(genesis, session.id, {
    onEvent: (event) => seen.push(event),
    onState: (state) => states.push(state),
    EventSource: EventSource as unknown as new (url: string) => EventSourceLike,
  });
  try {
    await until("the session's first event", () => seen.find((e) => e.event_type === "Genesis.Session.Created"));

    const accepted = await genesis.send(session.id, { command_type: "RequestConceptGeneration", payload: { count: 2 } });
    assert.equal(accepted.status, 202);
    assert.equal(accepted.body.status, "RECEIVED");
    assert.ok(accepted.status === 202 && accepted.location.endsWith(`/commands/${accepted.body.command_id}`));
    assert.equal(sentKeys.at(-1), accepted.idempotencyKey); // every send carries a key

    const duplicate = await genesis
      .send(session.id, { command_type: "RequestConceptGeneration", payload: {} })
      .then(() => assert.fail("an equal command in flight is a 409"), (error: unknown) => error);
    assert.ok(duplicate instanceof DuplicateCommand);
    assert.equal(duplicate.status, 409);
    assert.equal(duplicate.errorCode, "DUPLICATE_COMMAND");
    assert.equal(duplicate.duplicateCommandId, accepted.body.command_id);

    const again = await genesis.send(session.id, { command_type: "RequestConceptGeneration", payload: { count: 2 } },
      { idempotencyKey: accepted.idempotencyKey });
    assert.deepEqual([again.status, again.replayed, again.body.command_id], [202, true, accepted.body.command_id]);

    const pending = await genesis.getSession(session.id);
    assert.equal(pending.is_pending, true);
    assert.deepEqual(pending.pending_commands, [{ id: accepted.body.command_id, type: "RequestConceptGeneration" }]);

    const confirmed = await genesis.send(session.id, { command_type: "ConfirmStage",
      payload: { stage: "CONCEPT_SELECTION", data: { concept: "A lighthouse" } } });
    assert.equal(confirmed.status, 200);
    assert.ok(confirmed.status === 200 && confirmed.body.session.stage === "STORY_CONCEPTION");

    const stale = await genesis.send(session.id, { command_type: "ConfirmStage", payload: { stage: "CONCEPT_SELECTION" } })
      .then(() => assert.fail("the stage has moved on"), (error: unknown) => error);
    assert.ok(stale instanceof GenesisError && !(stale instanceof DuplicateCommand));
    assert.deepEqual([stale.status, stale.errorCode], [409, "STAGE_CONFLICT"]);

    await until("the stage's event, live", () => seen.find((e) => e.event_type === "Genesis.Session.StageConfirmed"));

    // The first access token lives a few seconds: at its exp the server ends the stream, and the helper comes back
    // with a fresh token after the last id. An event committed meanwhile still arrives, once.
    await until("the stream to end at the token's exp", () => (states.includes("reconnecting") ? true : undefined));
    await genesis.send(session.id, { command_type: "ConfirmStage", payload: { stage: "STORY_CONCEPTION" } });
    await until("the event sent after the reconnect", () => seen.filter((e) => e.event_type === "Genesis.Session.StageConfirmed")[1]);
    const sequences = seen.map((e) => e.sequence);
    assert.deepEqual(sequences, [...new Set(sequences)].sort((a, b) => a - b)); // each once, in order
    assert.deepEqual(seen.map((e) => e.aggregate_version), [1, 2, 3, 4]);
    assert.equal(states.at(-1), "live");
  } finally {
    stream.close();
  }
});

test("a refusal is a typed error", { skip: !base }, async () => {
  const missing = await genesis.getSession("00000000-0000-0000-0000-000000000000").catch((error: unknown) => error);
  assert.ok(missing instanceof GenesisError);
  assert.deepEqual([missing.status, missing.errorCode], [404, "SESSION_NOT_FOUND"]);
});
