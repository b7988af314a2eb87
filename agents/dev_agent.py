"""`genesis agent --dev`: a development stand-in for the real agents (CONTRACT §9), built on the same helper
(agents.consumer) and routes a real agent uses, so the whole flow can be watched in the console.

It answers ConceptGenerationRequested with progress (30, then 70) and `count` placeholder concepts shaped by
the payload's preferences, and FeedbackSubmitted with a revision that quotes the feedback. Every result says
`"generator": "development"`. Results are a function of the command alone, so a redelivered event completes
its task with the same result again: the API answers as before and records nothing.

The concept flow waits for the user (CONTRACT §9): before proposing, the agent parks the flow with its concepts
as the resume handle, expecting SubmitFeedback (parking before completing, so the user cannot answer before the
pause exists). The feedback that resumes it is answered with a revision of those concepts, by whichever member
of the group reads it: the handle, not this process's memory, carries the flow. When the user answered before
the pause landed, wait() says so (RESUMED) and the revision is made at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from agents.consumer import Agent, Event
from agents.task_client import TaskClient
from genesis import errors
from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings

log = logging.getLogger("genesis.agent")

GENERATOR = "development"
AGENT_USER = "genesis-dev-agent"
TOKEN_TTL = 3600
CONCEPTS_REQUESTED = "Genesis.Session.ConceptGenerationRequested"
FEEDBACK_SUBMITTED = "Genesis.Session.FeedbackSubmitted"
FEEDBACK_COMMAND = "SubmitFeedback"
WAIT_SECONDS = 86400  # how long a proposal waits for the user's feedback


def placeholder_concepts(payload: dict[str, Any]) -> list[dict[str, Any]]:
    count = payload.get("count", 3)
    count = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 3
    given = payload.get("preferences")
    preferences: dict[str, Any] = given if isinstance(given, dict) else {}
    genre = str(preferences.get("genre", "literary"))
    shaped = ", ".join(f"{k}: {v}" for k, v in sorted(preferences.items())) or "no preferences given"
    return [
        {
            "title": f"Placeholder {genre} concept {n}",
            "logline": f"A {genre} story, stand-in number {n} of {count} ({shaped}).",
            "preferences": preferences,
        }
        for n in range(1, count + 1)
    ]


def placeholder_revision(payload: dict[str, Any], resume_handle: dict[str, Any] | None = None) -> dict[str, Any]:
    """A revision quoting the feedback; of the proposed concepts when it resumes a concept flow."""
    feedback = str(payload.get("feedback", ""))
    revision = {
        "revision": f'Revised to answer the feedback: "{feedback}"',
        "feedback": feedback,
        "target": payload.get("target"),
        "generator": GENERATOR,
    }
    given = (resume_handle or {}).get("concepts")
    if isinstance(given, list):
        revision["concepts"] = [
            {**c, "title": f"{c.get('title', 'Concept')} (revised)", "revised_for": feedback}
            for c in given
            if isinstance(c, dict)
        ]
    return revision


class DevToken:
    """An agent-scope token signed with JWT_SECRET, renewed well before it expires."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        if time.monotonic() >= self._renew_at:
            self._token = issue_token(self._settings, AGENT_USER, TOKEN_TTL, AGENT_SCOPE)
            self._renew_at = time.monotonic() + TOKEN_TTL / 2
        return self._token


def dev_agent(settings: Settings, tasks: TaskClient) -> Agent:
    agent = Agent(
        bootstrap=settings.kafka_bootstrap_servers, topic=settings.kafka_topic, group=settings.agent_group, tasks=tasks
    )
    step = settings.agent_step_delay

    @agent.handler(CONCEPTS_REQUESTED)
    async def concepts(event: Event) -> None:
        await tasks.progress(event.command_id, 30, "Sketching placeholder concepts")
        await asyncio.sleep(step)
        await tasks.progress(event.command_id, 70, "Shaping them by the preferences")
        await asyncio.sleep(step)
        concepts = placeholder_concepts(event.payload)
        # Parked before proposing: the feedback cannot come before the pause exists (save the race below).
        try:
            handle = await agent.wait(event.command_id, {"concepts": concepts}, WAIT_SECONDS, [FEEDBACK_COMMAND])
        except errors.SessionClosed:  # closed while the concepts were made: nobody will answer, propose all the same
            handle = {"status": "NOT_WAITING"}
        result = {"concepts": concepts, "generator": GENERATOR}
        await tasks.complete(event.command_id, "COMPLETED", result)
        log.info("proposed concepts", extra={"fields": {"command_id": event.command_id, "handle": handle["status"]}})
        if handle["status"] == "RESUMED" and handle.get("resumed_by"):
            # The user answered before the pause landed: their command's event carries no `resumes`, so the
            # revision of these concepts is made now (a plain answer to that event loses with 409, settled).
            await revise(str(handle["resumed_by"]), handle.get("resume_payload") or {}, {"concepts": concepts})

    async def revise(command_id: str, payload: dict[str, Any], resume_handle: dict[str, Any] | None) -> None:
        await tasks.progress(command_id, 50, "Revising")
        await asyncio.sleep(step)
        await tasks.complete(command_id, "COMPLETED", placeholder_revision(payload, resume_handle))
        log.info("revised content", extra={"fields": {"command_id": command_id, "resumed": resume_handle is not None}})

    @agent.handler(FEEDBACK_SUBMITTED)
    async def feedback(event: Event) -> None:
        resumes = event.resumes
        await revise(event.command_id, event.payload, resumes.resume_handle if resumes else None)

    return agent


def check_dev_agent_settings(settings: Settings) -> None:
    # `--dev` is the opt-in (CONTRACT §7); it needs the secret it signs its agent token with.
    settings.require("kafka_bootstrap_servers", "jwt_secret")


async def serve_agent(settings: Settings, stop: asyncio.Event) -> None:
    """Runs the development agent until `stop` (what `genesis dev` and `genesis agent --dev` run)."""
    check_dev_agent_settings(settings)
    async with TaskClient(settings.api_url, DevToken(settings)) as tasks:
        log.info("development agent reporting to %s", settings.api_url)
        await dev_agent(settings, tasks).run(stop)
