"""A minimal Genesis agent built on the consumer helper (docs/agents.md): it answers
RequestConceptGeneration with one concept per requested `count`.

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 GENESIS_API_URL=http://127.0.0.1:8000 \\
    AGENT_TOKEN=$(genesis token --user concept-agent --scope genesis:agent) python examples/agent.py
"""

from __future__ import annotations

import asyncio
import os
import signal

from agents.consumer import Agent, Event
from agents.task_client import TaskClient


async def main() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)

    async with TaskClient(os.environ.get("GENESIS_API_URL", "http://127.0.0.1:8000"), os.environ["AGENT_TOKEN"]) as api:
        agent = Agent(
            bootstrap=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            topic=os.environ.get("KAFKA_TOPIC", "domain-events"),
            group=os.environ.get("AGENT_GROUP", "example-concept-agent"),
            tasks=api,  # an exception in a handler completes its task FAILED
        )

        @agent.handler("Genesis.Session.ConceptGenerationRequested")
        async def propose(event: Event) -> None:
            await api.progress(event.command_id, 10, "thinking")
            count = event.payload.get("count", 3)
            # Deterministic in the event: a redelivery sends the same completion, which the API
            # answers as before without recording anything.
            concepts = [{"title": f"Concept {n} of {count}"} for n in range(1, count + 1)]
            await api.complete(event.command_id, "COMPLETED", {"concepts": concepts, "generator": "example"})

        await agent.run(stop)  # returns after SIGTERM, once the event at hand is done and committed


if __name__ == "__main__":
    asyncio.run(main())
