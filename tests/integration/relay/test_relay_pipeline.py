"""The relay's pipeline against the interleavings a review of relay v2 found (issue 22): a stop, an error, a
lost claim or a stall while another batch is being published or settled. The relay's own worker and publisher
run in the test's process against the real PostgreSQL and the real broker; the interleaving is forced by
holding one step back (a slow settle, a stalled publish), which is the only thing injected.

What must hold whatever the interleaving: a row on the topic is SENT (or was published before its claim was
lost, and is counted as fenced), a lost claim is dropped rather than raised, a fenced settle still schedules
the batch's failures, and a row an operator discarded never reaches the topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from genesis import db
from genesis.settings import Settings
from relay.brokerinfo import decide_idempotence
from relay.idempotent import publisher_for
from relay.publisher import Publisher
from relay.worker import RelayWorker
from tests.relay_harness import USER, Rig, bulk_backlog, new_session

BATCH = 100


class HeldBackPool:
    """The relay's pool, with its first `mark_outbox_sent` preceded by `before()`: a settle that is slow
    to reach the database (a busy pool, a pause), which is when the review's interleavings happen."""

    def __init__(self, pool: asyncpg.Pool[Any], before: Callable[[], Awaitable[None]]) -> None:
        self._pool, self._before, self._held = pool, before, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if "mark_outbox_sent" in query and not self._held:
            self._held = True
            await self._before()
        return await self._pool.fetchval(query, *args, **kwargs)


@contextlib.asynccontextmanager
async def relay_in_process(
    rig: Rig,
    *,
    lease: float = 30,
    publish_timeout: float = 5,
    hold_first_settle: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[tuple[RelayWorker, Publisher]]:
    """The worker and publisher `genesis relay` runs, on a pool of their own, publishing to the rig's topic."""
    settings = await decide_idempotence(  # as `genesis relay` starts: on where the broker grants producer ids
        Settings(
            database_url=rig.database_url,
            kafka_bootstrap_servers=rig.bootstrap,
            kafka_topic=rig.topic,
            relay_batch_size=BATCH,
            relay_lease=lease,
            relay_publish_timeout=publish_timeout,
        ),
        asyncio.Event(),
    )
    assert settings is not None
    pool = await db.create_pool(rig.database_url, application_name="genesis-relay", max_size=3)
    publisher = publisher_for(settings, timeout=publish_timeout)
    await publisher.start()
    try:
        relay_pool: Any = HeldBackPool(pool, hold_first_settle) if hold_first_settle else pool
        worker = RelayWorker(
            relay_pool, publisher, batch_size=BATCH, poll_interval=5, max_retries=3, retry_base_delay=1, lease=lease,
            topic=settings.kafka_topic, source=settings.cloudevents_source,
        )  # fmt: skip
        yield worker, publisher
    finally:
        await publisher.stop()
        await pool.close()


async def long_session(rig: Rig, events: int) -> None:
    """One session with `events` events in one commit: a claim of BATCH rows leaves it unfinished."""
    session = await new_session(rig.pool)
    await rig.pool.execute(
        """SELECT count(genesis_append_event($1::uuid, 'Genesis.Session.FeedbackSubmitted', jsonb_build_object('n', n),
                                             gen_random_uuid(), $2, NULL)) FROM generate_series(1, $3) n""",
        session, USER, events - 1,
    )  # fmt: skip


async def published_but_pending(rig: Rig) -> set[str]:
    """Events on the topic whose row is still PENDING: published, and to be published again."""
    await asyncio.sleep(1.5)  # the consumer catches up with what was acknowledged
    pending = {
        str(r["event_id"]) for r in await rig.pool.fetch("SELECT event_id FROM event_outbox WHERE status = 'PENDING'")
    }
    return rig.consumer.event_ids() & pending


async def test_a_stop_while_a_batch_settles_leaves_nothing_it_published_pending(rig: Rig) -> None:
    # One long session: on relay v2 the batch claimed ahead continued its key with the token of the batch
    # in flight, and the stop's release of it gave the key up before that batch's settle came through.
    await long_session(rig, 3 * BATCH + 50)
    stop = asyncio.Event()

    async def stop_then_settle() -> None:
        stop.set()  # SIGTERM arrives as the first batch's settle sets out
        await asyncio.sleep(0.5)

    async with relay_in_process(rig, hold_first_settle=stop_then_settle) as (worker, publisher):
        publisher.stopping = stop  # as RelayWorker.run sets it
        await worker.drain(stop)

    assert rig.consumer.event_ids(), "nothing was published: the test proves nothing"
    assert await published_but_pending(rig) == set()
    assert await rig.pool.fetchval("SELECT count(*) FROM outbox_leases") == 0  # the stopped relay holds nothing


class InjectedError(Exception):
    pass


async def test_an_error_while_a_batch_settles_leaves_nothing_it_published_pending(rig: Rig) -> None:
    await long_session(rig, 3 * BATCH + 50)
    publishes = 0

    async def slow_settle() -> None:
        await asyncio.sleep(0.5)

    async with relay_in_process(rig, hold_first_settle=slow_settle) as (worker, publisher):
        real = publisher.publish

        async def second_publish_fails(*args: Any, **kwargs: Any) -> Any:
            nonlocal publishes
            publishes += 1
            if publishes == 2:  # while the first batch's settle is on its way
                raise InjectedError("a bug, or a cancellation, in the middle of a drain")
            return await real(*args, **kwargs)

        publisher.publish = second_publish_fails  # type: ignore[method-assign]
        with pytest.raises(InjectedError):
            await worker.drain(asyncio.Event())

    assert rig.consumer.event_ids(), "nothing was published: the test proves nothing"
    assert await published_but_pending(rig) == set()


async def test_a_claim_lost_before_it_is_handed_back_is_dropped_not_raised(rig: Rig) -> None:
    await bulk_backlog(rig.pool, sessions=3 * BATCH, rounds=1)  # short sessions: every claim its own keys
    stop = asyncio.Event()

    async with relay_in_process(rig) as (worker, publisher):
        publisher.stopping = stop
        real = publisher.publish

        async def steal_the_next_batch_then_stop(rows: Any, *args: Any, **kwargs: Any) -> Any:
            if not stop.is_set():
                # The batch claimed beside this one loses its keys (its lease ran out and another relay took
                # them), and SIGTERM comes: the relay hands that batch back and finds it gone.
                mine = [r.id for r in rows]
                for _ in range(200):
                    taken = await rig.pool.execute(
                        """UPDATE outbox_heads h SET claim_token = gen_random_uuid(), due_at = now() + interval '1 min'
                            WHERE h.claim_token IS NOT NULL AND h.head_id <> ALL($1::bigint[])""",
                        mine,
                    )
                    if taken != "UPDATE 0":
                        break
                    await asyncio.sleep(0.01)
                stop.set()
            return await real(rows, *args, **kwargs)

        publisher.publish = steal_the_next_batch_then_stop  # type: ignore[method-assign]
        await worker.drain(stop)  # no ClaimLostError: the lost claim is dropped

    assert await published_but_pending(rig) == set()


async def test_a_settle_fenced_out_still_schedules_the_failures_of_its_batch(rig: Rig) -> None:
    # One batch: a session whose rows are sent but whose claim is lost before the settle, and another whose
    # row the broker refuses (over 1 MiB). The refusal must still be recorded: the row's retry scheduled and
    # its key given back, not left waiting out the whole lease.
    lost, refused = await new_session(rig.pool), await new_session(rig.pool)
    await rig.pool.execute(
        """SELECT count(genesis_append_event($1::uuid, 'Genesis.Session.FeedbackSubmitted', $2, gen_random_uuid(),
                                             $3, NULL))""",
        refused, {"feedback": "x" * 1_100_000}, USER,
    )  # fmt: skip
    async with relay_in_process(rig) as (worker, publisher):
        real = publisher.publish

        async def lose_a_key_meanwhile(*args: Any, **kwargs: Any) -> Any:
            outcome = await real(*args, **kwargs)
            await rig.pool.execute(
                "UPDATE outbox_heads SET claim_token = gen_random_uuid() WHERE key = $1 AND claim_token IS NOT NULL",
                lost,
            )
            return outcome

        publisher.publish = lose_a_key_meanwhile  # type: ignore[method-assign]
        await worker.drain(asyncio.Event())

    row = await rig.pool.fetchrow(
        """SELECT o.attempts, o.next_attempt_at, h.claim_token FROM event_outbox o JOIN outbox_heads h ON h.key = o.key
            WHERE o.key = $1 AND length(o.payload::text) > 1000000""",
        refused,
    )
    assert row is not None
    assert row["attempts"] == 1  # its retry is scheduled
    assert row["next_attempt_at"] is not None
    assert row["claim_token"] is None  # and the relay let go of its key


async def test_a_row_discarded_while_its_relay_stalls_after_the_claim_never_reaches_the_topic(rig: Rig) -> None:
    # The review's scenario: a 3 s lease, and a stall between the claim and the send (a GC or VM pause, or
    # slow metadata calls) longer than it. The operator's discard is accepted once the lease has run out.
    session = await new_session(rig.pool)
    (row_id,) = [r["id"] for r in await rig.pool.fetch("SELECT id FROM event_outbox WHERE key = $1", session)]
    discarded = asyncio.Event()

    async def discard_once_the_lease_ran_out() -> None:
        for _ in range(100):
            with contextlib.suppress(asyncpg.PostgresError):
                await rig.pool.execute("SELECT discard_outbox($1, 'not wanted after all')", row_id)
                discarded.set()
                return
            await asyncio.sleep(0.1)

    async with relay_in_process(rig, lease=3, publish_timeout=1) as (worker, publisher):
        real_chunks = publisher._chunks

        async def stalled(*args: Any, **kwargs: Any) -> Any:
            await discard_once_the_lease_ran_out()  # the relay stands still meanwhile
            return await real_chunks(*args, **kwargs)

        publisher._chunks = stalled  # type: ignore[method-assign]
        await worker.drain(asyncio.Event())

    assert discarded.is_set(), "the discard was refused throughout: the test proves nothing"
    await asyncio.sleep(1.5)
    event_id = await rig.pool.fetchval("SELECT event_id::text FROM event_outbox WHERE id = $1", row_id)
    assert event_id not in rig.consumer.event_ids()
    assert await rig.pool.fetchval("SELECT status FROM event_outbox WHERE id = $1", row_id) == "DISCARDED"
