"""The console's stream client (api/static/console/sse.js) under Node against the real `genesis api` in dev mode:
at the token's exp the server ends the stream; the client renews its token (here the way the console does, from
/console/token) and resumes with Last-Event-ID, missing nothing and showing nothing twice."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.api_process import running_api
from tests.conftest import JWT_SECRET
from tests.relay_harness import STAGES, new_session, submit

NODE = shutil.which("node")
SSE_JS = Path(__file__).parents[3] / "api" / "static" / "console" / "sse.js"
pytestmark = pytest.mark.skipif(NODE is None, reason="no node to run the console's sse.js")

DRIVER = """
import { EventStream } from "./sse.mjs";
const [base, sessionId, firstToken] = process.argv.slice(2);
let token = firstToken;
const say = (line) => process.stdout.write(JSON.stringify(line) + "\\n");
const stream = new EventStream(`${base}/genesis/sessions/${sessionId}/events/stream`, {
  authorization: () => `Bearer ${token}`,
  renewToken: async () => {
    const response = await fetch(`${base}/console/token`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: "dev-user" }),
    });
    if (!response.ok) return false;
    token = (await response.json()).token;
    say({ renewed: true });
    return true;
  },
  onMessage: (m) => say({ id: m.id, event: m.event }),
  onState: (state, detail) => say({ state, detail }),
});
stream.start();
"""


async def _until(lines: asyncio.StreamReader, seen: list[dict[str, Any]], check: Any, start: int = 0) -> None:
    """Reads the driver's lines into `seen` until one from `start` on passes `check`."""
    async with asyncio.timeout(20):
        while not any(check(s) for s in seen[start:]):
            raw = await lines.readline()
            assert raw, seen
            seen.append(json.loads(raw))


async def test_the_console_resumes_with_a_fresh_token_when_its_stream_ends_at_exp(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    shutil.copy(SSE_JS, tmp_path / "sse.mjs")
    (tmp_path / "driver.mjs").write_text(DRIVER)
    session_id = await new_session(pool, "dev-user")
    async with running_api(database_url, GENESIS_DEV="1", SSE_HEARTBEAT="0.5") as api:
        assert NODE is not None
        short = issue_token(Settings(jwt_secret=JWT_SECRET), "dev-user", ttl=3)  # issued once the API is up
        node = await asyncio.create_subprocess_exec(
            NODE, str(tmp_path / "driver.mjs"), api.base_url, session_id, short,
            stdout=asyncio.subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        assert node.stdout is not None
        seen: list[dict[str, Any]] = []
        try:
            await _until(node.stdout, seen, lambda s: s.get("event") == "Genesis.Session.Created")
            await submit(pool, session_id, "ConfirmStage", {"stage": STAGES[0]}, "dev-user")
            await _until(node.stdout, seen, lambda s: s.get("id") == "2")
            await _until(node.stdout, seen, lambda s: s.get("state") == "reconnecting")  # the stream ended at exp
            await submit(pool, session_id, "ConfirmStage", {"stage": STAGES[1]}, "dev-user")  # while away
            await _until(node.stdout, seen, lambda s: s.get("renewed"))
            await _until(node.stdout, seen, lambda s: s.get("state") == "live", start=len(seen))
            await submit(pool, session_id, "ConfirmStage", {"stage": STAGES[2]}, "dev-user")
            await _until(node.stdout, seen, lambda s: s.get("id") == "4")
        finally:
            node.terminate()
            await node.wait()
    ids = [s["id"] for s in seen if "id" in s]
    assert ids == ["1", "2", "3", "4"][: len(ids)]
    assert ids[-1] == "4"
    assert not any(s.get("event") == "token-expired" for s in seen)  # handled inside sse.js
