"""`genesis topic tail`, run as a developer runs it: a subprocess reading the real topic, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.processes import genesis_command
from tests.relay_harness import Rig, events_by_session, new_session, open_rig, submit


@pytest.fixture
async def rig(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(database_url, kafka_bootstrap, tmp_path) as r:
        yield r


async def _tail(rig: Rig, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        genesis_command(), "topic", "tail", *args, env=rig.env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _lines(process: asyncio.subprocess.Process, n: int) -> list[str]:
    assert process.stdout is not None
    return [(await asyncio.wait_for(process.stdout.readline(), 15)).decode().strip() for _ in range(n)]


async def _interrupt(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_tail_from_the_beginning_prints_a_session_s_records_and_ctrl_c_exits_0(rig: Rig) -> None:
    await rig.start_relay()
    other = await new_session(rig.pool)
    session_id = await new_session(rig.pool)
    await submit(rig.pool, session_id, "RequestConceptGeneration", {})
    expected = await events_by_session(rig.pool)
    await rig.consumer.wait_for(set(expected[session_id]) | set(expected[other]), within=10)

    process = await _tail(rig, "--session", session_id, "--from-beginning")
    try:
        lines = await _lines(process, 2)
    finally:
        code, err = await _interrupt(process)
    assert code == 0, err
    assert "Traceback" not in err
    for line, event_id in zip(lines, expected[session_id], strict=True):
        record = rig.consumer.received(event_id)
        fields = dict(part.split("=", 1) for part in line.split())
        assert fields["partition"] == str(record.partition)
        assert fields["offset"] == str(record.offset)
        assert fields["key"] == session_id
        assert fields["event_type"] == record.headers["event_type"]
        assert fields["ce_id"] == event_id
        assert fields["trace_id"] == "-"  # written from psql, no trace came


async def test_tail_without_from_beginning_prints_only_what_arrives_after_it_started(rig: Rig) -> None:
    await rig.start_relay()
    before = await new_session(rig.pool)
    await rig.consumer.wait_for(set((await events_by_session(rig.pool))[before]), within=10)
    process = await _tail(rig)
    try:
        assert process.stderr is not None
        await asyncio.wait_for(process.stderr.readline(), 15)  # "tailing …": it is at the end now
        after = await new_session(rig.pool)
        (line,) = await _lines(process, 1)
    finally:
        code, err = await _interrupt(process)
    assert code == 0, err
    assert f"key={after}" in line
