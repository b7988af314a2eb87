"""A consumer helper for agents: read the Genesis topic in a consumer group, one handler per event type.

    agent = Agent(bootstrap="localhost:9092", topic="domain-events", group="concept-agent", tasks=client)

    @agent.handler("Genesis.Session.ConceptGenerationRequested")
    async def concepts(event: Event) -> None:
        await client.progress(event.command_id, 50, "halfway")
        await client.complete(event.command_id, "COMPLETED", {"concepts": [...]})

    await agent.run(stop)

Delivery is at-least-once (CONTRACT §6): the offset of a record is committed only after its handler returned, so
an agent that dies mid-task gets the record again after a restart (or another member of the group does). Records
are deduped on `event_id` among the recent ones; beyond that the routes make a repeat harmless (the same
completion again is answered as before, a settled command refuses the rest with COMMAND_NOT_PENDING).

What a handler raises decides the record's fate:
- COMMAND_NOT_PENDING / COMMAND_NOT_FOUND: the work is settled (or not this deployment's): the record is done;
- SERVICE_UNAVAILABLE (the API did not answer through the client's retries), UNAUTHORIZED or FORBIDDEN (the
  token): the agent stops without committing, exit status 1, so its supervisor restarts it (or someone mends
  the token) and the record comes again;
- anything else is a failure of the task: it is completed FAILED with the error, and the record is done (a
  FAILED report the API refuses as well is logged, never a reason to stop).

A record that cannot be read as a Genesis event (a tombstone, foreign or truncated JSON, bytes that are not UTF-8,
ids that are not UUIDs) is logged with where it lies, counted (`counts["unreadable"]`,
`genesis_agent_unreadable_records_total`) and committed past: it never stops this agent, or the group on every
restart.

Stopping (`stop` set, e.g. by SIGTERM): the handler at work is given `shutdown_grace` seconds to finish, its
offset is committed, and `run` returns; a handler still running after that is cancelled and left uncommitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from agents.task_client import TaskClient
from genesis import errors

log = logging.getLogger("genesis.agent")

Handler = Callable[["Event"], Coroutine[Any, Any, None]]
ANY_EVENT = "*"  # the handler of every event type that has none of its own
SETTLED = (errors.CommandNotPending, errors.CommandNotFound)
# No task can succeed while these hold (the API out of reach, the token refused): stop, uncommitted.
STOPS = (errors.Unavailable, errors.Unauthorized, errors.Forbidden)
UNREADABLE = Counter(
    "genesis_agent_unreadable_records_total",
    "Records an agent could not read as a Genesis event (tombstone, foreign JSON, not UTF-8), skipped",
    ["group"],
)
EVENT_FIELDS = ("event_id", "event_type", "aggregate_id")  # what every Genesis event carries, as strings


class UnreadableRecordError(ValueError):
    """A record that is not a Genesis event: its value is no JSON object with the event's fields."""


@dataclass(frozen=True)
class Resumes:
    """The paused flow an event's command resumed (the event's `metadata.resumes`, CONTRACT §9)."""

    handle_id: str
    correlation_id: str  # the command whose flow was parked
    resume_handle: dict[str, Any]  # what the parking agent handed to wait()

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Resumes | None:
        """None when the event resumes no flow, or says so in a shape this agent cannot read."""
        metadata = event.get("metadata")
        resumes = metadata.get("resumes") if isinstance(metadata, dict) else None
        if not isinstance(resumes, dict):
            return None
        handle_id, correlation_id = resumes.get("handle_id"), resumes.get("correlation_id")
        resume_handle = resumes.get("resume_handle")
        if not isinstance(handle_id, str) or not isinstance(correlation_id, str) or not isinstance(resume_handle, dict):
            return None
        return cls(handle_id=handle_id, correlation_id=correlation_id, resume_handle=resume_handle)


@dataclass(frozen=True)
class Event:
    """One Genesis event as read from the topic (the value is the event JSON, CONTRACT §6)."""

    event_id: str
    event_type: str
    session_id: str
    command_id: str  # the correlation id: the command that caused the event ("" when none)
    payload: dict[str, Any]
    value: dict[str, Any]
    partition: int
    offset: int

    @property
    def resumes(self) -> Resumes | None:
        """The paused flow this event's command resumed, or None (a command that resumes nothing)."""
        return Resumes.from_event(self.value)

    @classmethod
    def from_record(
        cls, headers: Iterable[tuple[str, bytes | None]], value: bytes | None, partition: int, offset: int
    ) -> Event:
        """The event a record carries; UnreadableRecordError when it carries none."""
        if value is None:
            raise UnreadableRecordError("a tombstone (no value)")
        try:
            event = json.loads(value)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise UnreadableRecordError(f"not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(event, dict):
            raise UnreadableRecordError(f"a JSON {type(event).__name__}, not an event object")
        missing = [name for name in EVENT_FIELDS if not isinstance(event.get(name), str) or not event[name]]
        # Ids a handler passes on to the task routes: a foreign record's "a/b" must never become a request path.
        missing += [name for name in ("event_id", "aggregate_id") if name not in missing and not _is_uuid(event[name])]
        if event.get("correlation_id") is not None and not _is_uuid(event["correlation_id"]):
            missing.append("correlation_id")
        payload = event.get("payload") or {}
        if missing or not isinstance(payload, dict):
            raise UnreadableRecordError(f"not a Genesis event: {', '.join(missing) or 'payload'} missing or malformed")
        return cls(
            event_id=header(headers, "event_id") or event["event_id"],
            event_type=event["event_type"],
            session_id=event["aggregate_id"],
            command_id=str(event.get("correlation_id") or ""),
            payload=payload,
            value=event,
            partition=partition,
            offset=offset,
        )


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def header(headers: Iterable[tuple[str, bytes | None]], name: str) -> str | None:
    """The header's text; None when it is absent, null or not UTF-8 (the event's own field is then used)."""
    for key, value in headers:
        if key == name and value is not None:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


class RecentIds:
    """The last `capacity` event ids seen: a cheap first filter, never the only one (it forgets)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


class _HandlerAbandonedError(Exception):
    """The handler did not finish within the shutdown grace: its record stays uncommitted."""


class _LogAssignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Says which partitions this member holds after each rebalance (operators and tests read it)."""

    def __init__(self, group: str) -> None:
        self.group = group

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        log.info("partitions assigned", extra={"fields": {"group": self.group, "partitions": partitions}})


class Agent:
    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        tasks: TaskClient | None = None,
        recent: RecentIds | None = None,
        dedupe: bool = True,
        shutdown_grace: float = 8.0,
        poll_ms: int = 500,
        **consumer_options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.tasks = tasks  # when given, a handler's unexpected error completes the task FAILED
        self.recent = recent or RecentIds()
        # False for a handler that dedupes by itself, e.g. one that records each event_id in the
        # transaction of its effect (examples/consumer.py): it then sees every delivery.
        self.dedupe = dedupe
        self.shutdown_grace = shutdown_grace
        self.poll_ms = poll_ms
        self.consumer_options = consumer_options
        self.handlers: dict[str, Handler] = {}
        self.counts: dict[str, int] = dict.fromkeys(
            ("handled", "duplicate", "skipped", "settled", "failed", "unreadable"), 0
        )

    async def wait(
        self, command_id: str, resume_handle: dict[str, Any], timeout_seconds: int, expects: list[str]
    ) -> dict[str, Any]:
        """Parks the flow of task `command_id` until the user's next command of a type in `expects` (CONTRACT §9):
        `TaskClient.wait` through this agent's client. The resuming command's event reaches whichever member of
        the group reads it with `event.resumes` (its `resume_handle` is the one given here)."""
        if self.tasks is None:
            raise RuntimeError("Agent(tasks=TaskClient(...)) is needed to park a flow")
        return await self.tasks.wait(command_id, resume_handle, timeout_seconds, expects)

    def handler(self, event_type: str) -> Callable[[Handler], Handler]:
        """Registers the decorated coroutine function as the handler of `event_type` (or of ANY_EVENT)."""

        def register(function: Handler) -> Handler:
            self.handlers[event_type] = function
            return function

        return register

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until `stop`; raises `errors.Unavailable` when the API stays out of reach."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,  # commit after the handler returned, never before
            auto_offset_reset="earliest",  # a new group also does the work asked before it joined
            **self.consumer_options,
        )
        consumer.subscribe([self.topic], listener=_LogAssignments(self.group))
        await consumer.start()
        log.info("agent consuming %s as group %s: %s", self.topic, self.group, sorted(self.handlers))
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=self.poll_ms)
                for tp, records in batches.items():
                    for record in records:
                        try:
                            event = Event.from_record(
                                record.headers or (), record.value, record.partition, record.offset
                            )
                        except UnreadableRecordError as exc:
                            self._unreadable(tp, record.offset, exc)  # and committed past, below
                        else:
                            try:
                                await self._handle(event, stop)
                            except _HandlerAbandonedError:
                                return  # uncommitted: the group gets it again
                        try:
                            await consumer.commit({TopicPartition(tp.topic, tp.partition): record.offset + 1})
                        except KafkaError as exc:
                            # The partition moved to another member meanwhile; it reads from the last commit,
                            # and the repeat is harmless.
                            log.warning("commit of %s@%d failed: %s", tp, record.offset, exc)
                        if stop.is_set():
                            return
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            log.info("agent stopped: %s", self.counts)

    def _unreadable(self, tp: TopicPartition, offset: int, exc: UnreadableRecordError) -> None:
        self.counts["unreadable"] += 1
        UNREADABLE.labels(self.group).inc()
        where = {"topic": tp.topic, "partition": tp.partition, "offset": offset, "reason": str(exc)}
        log.warning("unreadable record skipped: %s", exc, extra={"fields": where})

    async def _handle(self, event: Event, stop: asyncio.Event) -> None:
        handler = self.handlers.get(event.event_type) or self.handlers.get(ANY_EVENT)
        if handler is None:
            self.counts["skipped"] += 1
            return
        if self.dedupe and event.event_id in self.recent:
            self.counts["duplicate"] += 1
            return
        try:
            await self._finish(asyncio.create_task(handler(event)), stop)
            self.counts["handled"] += 1
        except SETTLED as exc:
            self.counts["settled"] += 1
            log.info("%s of command %s already settled: %s", event.event_type, event.command_id, exc.message)
        except (_HandlerAbandonedError, *STOPS):
            raise
        except Exception as exc:
            self.counts["failed"] += 1
            log.exception("handler of %s failed for command %s", event.event_type, event.command_id)
            await self._fail_task(event, exc)
        self.recent.add(event.event_id)

    async def _finish(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        """The handler's outcome; when stopping, it is given `shutdown_grace` seconds more, then abandoned."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=self.shutdown_grace)
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                log.warning("handler still running after %.1fs of shutdown: left for redelivery", self.shutdown_grace)
                raise _HandlerAbandonedError
            task.result()
        finally:
            stopping.cancel()

    async def _fail_task(self, event: Event, exc: Exception) -> None:
        if self.tasks is None or not event.command_id:
            return
        try:
            await self.tasks.complete(event.command_id, "FAILED", {"error": f"{type(exc).__name__}: {exc}"})
        except SETTLED:
            pass
        except STOPS:
            raise
        except errors.DomainError as refused:  # e.g. a command this API does not know: the record is done all the same
            log.warning("could not record the failure of command %s: %s", event.command_id, refused.message)
