"""What the agent tests drive: the real API on a TCP port, a relay on a topic of the test's own, and
`genesis agent --dev` subprocesses that can be killed for real."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from api.app import create_app
from genesis.settings import Settings
from relay.service import run_relay
from tests.processes import ServiceProcess, genesis_command
from tests.relay_harness import eventually
from tests.topic import create_topic


class AgentProcess(ServiceProcess):
    """One `genesis agent --dev` subprocess; its JSON log lines go to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, argv: tuple[str, ...] = ()) -> None:
        super().__init__(argv or (genesis_command(), "agent", "--dev"), env, log_path)

    async def terminate(self, within: float = 10) -> int:
        """SIGTERM; its exit code, which must come within `within` seconds (the contract's bound)."""
        code, _ = await self.stop(within)
        return code

    def assigned(self) -> list[int] | None:
        """The partitions of its latest assignment, None before the first."""
        found = [line["partitions"] for line in self.logs() if line.get("message") == "partitions assigned"]
        return found[-1] if found else None

    def handled(self) -> list[str]:
        """The command ids it completed."""
        done = ("proposed concepts", "revised content")
        return [line["command_id"] for line in self.logs() if line.get("message") in done]

    async def logged(self, *command_ids: str, within: float = 30) -> list[str]:
        """handled(), once it names every one of `command_ids`: the agent logs a completion only after the API
        has recorded it, so a test that saw the database settle may read the log a few ms too early."""

        async def written() -> bool:
            return set(command_ids) <= set(self.handled())

        await eventually(written, within=within, what=f"the agent's log naming {command_ids}", every=0.05)
        return self.handled()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@dataclass
class Loop:
    """One test's world: the API on a port, a relay publishing to the test's topic, agents started on demand."""

    settings: Settings
    base_url: str
    topic: str
    group: str
    workdir: Path
    agents: list[AgentProcess] = field(default_factory=list)

    def agent_env(self, **settings: object) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AGENT_", "GENESIS_", "JWT_"))}
        env.update(
            GENESIS_DEV="1",
            KAFKA_BOOTSTRAP_SERVERS=self.settings.kafka_bootstrap_servers,
            KAFKA_TOPIC=self.topic,
            JWT_SECRET=self.settings.jwt_secret,
            GENESIS_API_URL=self.base_url,
            AGENT_GROUP=self.group,
            AGENT_STEP_DELAY="0.3",
            LOG_LEVEL="INFO",
        )
        env.update({k: str(v) for k, v in settings.items()})
        return env

    async def start_agent(self, *argv: str, **settings: object) -> AgentProcess:
        """`genesis agent --dev`, or the command `argv`, with the loop's settings."""
        agent = AgentProcess(self.agent_env(**settings), self.workdir / f"agent-{len(self.agents)}.log", argv)
        self.agents.append(agent)
        return await agent.start()

    async def wait_assigned(self, agent: AgentProcess, within: float = 60) -> None:
        async def assigned() -> bool:
            assert agent.process is not None
            assert agent.process.returncode is None, agent.tail()
            return bool(agent.assigned())

        await eventually(assigned, within=within, what="the agent's partitions assigned", every=0.1)


@contextlib.asynccontextmanager
async def open_loop(
    settings: Settings, kafka_bootstrap: str, workdir: Path, *, partitions: int = 2
) -> AsyncIterator[Loop]:
    topic = f"agent-test-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka_bootstrap, topic, partitions)
    loop_settings = dataclasses.replace(
        settings, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic=topic, relay_metrics_port=0,
        relay_poll_interval=1.0,
    )  # fmt: skip
    runner = web.AppRunner(create_app(loop_settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stop_relay = asyncio.Event()
    relay = asyncio.create_task(run_relay(loop_settings, stop_relay))
    loop = Loop(loop_settings, f"http://127.0.0.1:{port}", topic, f"group-{topic}", workdir)
    try:
        yield loop
    finally:
        await asyncio.gather(*(a.close() for a in loop.agents))
        stop_relay.set()
        await relay
        await runner.cleanup()


async def post(http: aiohttp.ClientSession, url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    async with http.post(url, json=body or {}, headers={"Authorization": f"Bearer {token}"}) as response:
        answer = await response.json()
        assert response.status in (200, 201, 202), (response.status, answer)
        return answer


async def get(http: aiohttp.ClientSession, url: str, token: str) -> Any:
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()
