"""The developer console in a real browser (Debian's chromium driven by Playwright) against the real API."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Request, expect

from api.app import create_app
from genesis import commands
from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings
from tests.browser.chromium import NEEDS_CHROMIUM, TIMEOUT_MS
from tests.relay_harness import complete, submit

pytestmark = NEEDS_CHROMIUM
StartConsole = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_console(settings: Settings, aiohttp_server: Callable[..., Any]) -> StartConsole:
    """Serves the real API in development mode; returns the console's URL."""

    async def start(**changes: Any) -> str:
        app: web.Application = create_app(dataclasses.replace(settings, dev=True, **changes))
        server = await aiohttp_server(app)
        return str(server.make_url("/console"))

    return start


async def _open_with_dev_token(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await page.get_by_test_id("dev-token-button").click()
    await expect(page.get_by_test_id("token-info")).to_contain_text("user (sub): dev-user")


def _events(page: Page, event_type: str | None = None) -> Any:
    selector = '[data-testid="event"]' + (f'[data-event-type="{event_type}"]' if event_type else "")
    return page.locator(selector)


async def test_a_developer_drives_a_session_from_the_console(
    start_console: StartConsole, page: Page, tmp_path: Path
) -> None:
    await _open_with_dev_token(page, await start_console())
    options = await page.get_by_test_id("command-type").locator("option").all_text_contents()
    assert options == list(commands.EXAMPLES)  # the catalogue comes from the server

    await page.get_by_test_id("create-session").click()
    await expect(page.get_by_test_id("result-status")).to_have_text("201")
    await expect(page.get_by_test_id("session-stage")).to_have_text("CONCEPT_SELECTION")
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    await expect(_events(page, "Genesis.Session.Created")).to_have_count(1)

    await page.get_by_test_id("command-type").select_option("RequestConceptGeneration")
    example = json.dumps(commands.EXAMPLES["RequestConceptGeneration"], indent=2)
    await expect(page.get_by_test_id("payload-editor")).to_have_value(example)
    await page.get_by_test_id("send-command").click()
    await expect(page.get_by_test_id("result-status")).to_have_text("202")
    await expect(page.get_by_test_id("result-headers")).to_contain_text("Location: /genesis/sessions/")
    requested = _events(page, "Genesis.Session.ConceptGenerationRequested")
    await expect(requested).to_have_count(1)

    await page.get_by_test_id("send-command").click()  # the same again, while the first is pending
    await expect(page.get_by_test_id("result-status")).to_have_text("409")
    await expect(page.get_by_test_id("result-body")).to_contain_text('"error_code": "DUPLICATE_COMMAND"')
    await expect(page.get_by_test_id("result-body")).to_contain_text('"message": "Command already processing"')

    await page.get_by_test_id("command-type").select_option("ConfirmStage")
    await expect(page.get_by_test_id("payload-editor")).to_have_value(re.compile('"stage": "CONCEPT_SELECTION"'))
    await page.get_by_test_id("send-command").click()
    await expect(page.get_by_test_id("result-status")).to_have_text("200")
    await expect(page.get_by_test_id("session-stage")).to_have_text("STORY_CONCEPTION")
    confirmed = _events(page, "Genesis.Session.StageConfirmed")
    await expect(confirmed).to_have_count(1)

    # The fields a frontend developer needs: order, per-session version, and what caused each event.
    await expect(_events(page)).to_have_count(3)
    versions = [await e.locator('[data-field="aggregate_version"]').inner_text() for e in await _events(page).all()]
    assert versions == ["v1", "v2", "v3"]
    sequences = [int(await e.get_attribute("data-sequence") or 0) for e in await _events(page).all()]
    assert sequences == sorted(set(sequences))
    cause = await confirmed.locator('[data-field="causation_id"]').get_attribute("title")
    assert cause == await requested.locator('[data-field="event_id"]').get_attribute("title")
    await expect(page.get_by_test_id("session-version")).to_have_text("3")

    await page.screenshot(path=tmp_path / "console.png", full_page=True)


async def test_the_stream_resumes_with_last_event_id_after_the_server_ends_it(
    start_console: StartConsole, page: Page, conn: asyncpg.Connection[Any]
) -> None:
    await _open_with_dev_token(page, await start_console(sse_buffer=2))
    streams: list[Request] = []
    page.on("request", lambda r: streams.append(r) if "/events/stream?" in r.url else None)
    await page.get_by_test_id("create-session").click()
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    await expect(_events(page)).to_have_count(1)
    session_id = str(uuid.UUID(await page.get_by_test_id("session-id").inner_text()))

    async with conn.transaction():  # one burst of 10 events: more than the stream's buffer of 2
        for i in range(5):
            await complete(conn, await submit(conn, session_id, "SubmitFeedback", {"feedback": f"{i}"}, "dev-user"))

    await expect(page.get_by_test_id("stream-note")).to_have_count(1)  # the server's `event: overflow`
    await expect(_events(page)).to_have_count(11)
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    versions = [await e.locator('[data-field="aggregate_version"]').inner_text() for e in await _events(page).all()]
    assert versions == [f"v{n}" for n in range(1, 12)]  # each once, in order
    assert len(streams) >= 2
    # The browser's own EventSource, with a stream token each time and no Authorization header (CONTRACT §5).
    assert {r.resource_type for r in streams} == {"eventsource"}
    first, resumed = (parse_qs(urlsplit(r.url).query) for r in streams[:2])
    assert "after" not in first
    assert first["stream_token"] != resumed["stream_token"]  # a fresh one for each connection
    sequences = [int(await e.get_attribute("data-sequence") or "") for e in await _events(page).all()]
    assert sequences[0] <= int(resumed["after"][0]) < sequences[-1]  # resumed mid-burst
    for request in streams:
        assert "authorization" not in await request.all_headers()


async def test_without_dev_mode_the_console_says_how_to_get_a_token(
    settings: Settings, aiohttp_server: Callable[..., Any], page: Page
) -> None:
    server = await aiohttp_server(create_app(settings))
    await page.goto(str(server.make_url("/console")))
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await page.get_by_test_id("dev-token-button").click()
    await expect(page.get_by_test_id("dev-token-status")).to_contain_text("genesis token --user")
    await expect(page.get_by_test_id("dev-token-button")).to_be_disabled()
    await page.get_by_test_id("create-session").click()  # no token: the API's own answer is shown
    await expect(page.get_by_test_id("result-status")).to_have_text("401")
    await expect(page.get_by_test_id("result-body")).to_contain_text("UNAUTHORIZED")


async def test_the_console_shows_an_agents_progress_and_the_proposed_concepts(
    start_console: StartConsole, page: Page, settings: Settings, tmp_path: Path
) -> None:
    url = await start_console()
    await _open_with_dev_token(page, url)
    await page.get_by_test_id("create-session").click()
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    await page.get_by_test_id("command-type").select_option("RequestConceptGeneration")
    await page.get_by_test_id("send-command").click()
    await expect(page.get_by_test_id("result-status")).to_have_text("202")
    command_id = json.loads(await page.get_by_test_id("result-body").inner_text())["command_id"]

    # What an agent sends (CONTRACT §9), with a token of the agent scope.
    agent = {"Authorization": f"Bearer {issue_token(settings, 'concept-agent', 600, AGENT_SCOPE)}"}
    base = url.removesuffix("/console")
    async with aiohttp.ClientSession(headers=agent) as http:
        async with http.post(
            f"{base}/genesis/tasks/{command_id}/progress", json={"progress": 40, "message": "Drafting"}
        ) as r:
            assert r.status == 200
        task = page.get_by_test_id("task")
        await expect(task).to_have_attribute("data-progress", "40")
        await expect(task).to_contain_text("40% Drafting")
        await expect(task.locator("progress")).to_have_attribute("value", "40")
        await page.screenshot(path=tmp_path / "progress.png", full_page=True)
        concepts = [
            {"title": "The Lighthouse", "logline": "A keeper's last summer"},
            {"title": "Salt", "logline": "Tides"},
        ]
        body = {"outcome": "COMPLETED", "result": {"concepts": concepts, "generator": "test"}}
        async with http.post(f"{base}/genesis/tasks/{command_id}/complete", json=body) as r:
            assert r.status == 200

    proposed = _events(page, "Genesis.Session.ConceptProposed")
    await expect(proposed).to_have_count(1)
    await expect(proposed.get_by_test_id("concepts").locator("li")).to_have_text(
        ["The Lighthouse — A keeper's last summer", "Salt — Tides"]
    )
    await expect(task).to_have_attribute("data-state", "done")
    await expect(task).to_contain_text("ConceptProposed")
    await page.screenshot(path=tmp_path / "proposed.png", full_page=True)


async def test_the_live_list_shows_where_each_event_landed_on_kafka(
    start_console: StartConsole, page: Page, database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    from tests.relay_harness import open_rig

    async with open_rig(database_url, kafka_bootstrap, tmp_path) as rig:
        await _open_with_dev_token(page, await start_console(kafka_topic=rig.topic))
        await page.get_by_test_id("create-session").click()
        created = _events(page, "Genesis.Session.Created")
        await expect(created).to_have_count(1)
        await expect(created.locator('[data-field="kafka"]')).to_have_text("not on Kafka yet")
        await rig.start_relay()  # only now can it land
        event_id = await created.locator('[data-field="event_id"]').get_attribute("title")
        assert event_id
        await rig.consumer.wait_for({event_id}, within=15)
        record = rig.consumer.received(event_id)
        await expect(created.locator('[data-field="kafka"]')).to_have_text(
            f"on Kafka: partition {record.partition}, offset {record.offset}"
        )


async def test_at_the_tokens_exp_the_console_renews_it_and_resumes_missing_nothing(
    start_console: StartConsole, page: Page, settings: Settings, conn: asyncpg.Connection[Any]
) -> None:
    """The stream ends at the access token's exp (`event: token-expired`); the console gets a fresh dev token and a
    fresh stream token, and resumes after the last id it saw."""
    await page.goto(await start_console(sse_heartbeat=0.5))
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await page.get_by_test_id("token-input").fill(issue_token(settings, "dev-user", ttl=4))
    await page.get_by_test_id("create-session").click()
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    session_id = str(uuid.UUID(await page.get_by_test_id("session-id").inner_text()))
    first_token = await page.get_by_test_id("token-input").input_value()
    await expect(page.get_by_test_id("token-input")).not_to_have_value(first_token)  # renewed at exp
    await submit(conn, session_id, "ConfirmStage", {"stage": "CONCEPT_SELECTION"}, "dev-user")
    await expect(_events(page)).to_have_count(2)
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    versions = [await e.locator('[data-field="aggregate_version"]').inner_text() for e in await _events(page).all()]
    assert versions == ["v1", "v2"]


async def test_finished_task_bars_do_not_pile_up(
    start_console: StartConsole, page: Page, settings: Settings, conn: asyncpg.Connection[Any]
) -> None:
    await _open_with_dev_token(page, await start_console())
    await page.get_by_test_id("create-session").click()
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    session_id = str(uuid.UUID(await page.get_by_test_id("session-id").inner_text()))
    agent = {"Authorization": f"Bearer {issue_token(settings, 'concept-agent', 600, AGENT_SCOPE)}"}
    base = page.url.removesuffix("/console")
    tasks = page.get_by_test_id("task")
    async with aiohttp.ClientSession(headers=agent) as http:
        for i in range(3):
            command_id = await submit(conn, session_id, "SubmitFeedback", {"feedback": f"round {i}"}, "dev-user")
            async with http.post(f"{base}/genesis/tasks/{command_id}/progress", json={"progress": 50}) as r:
                assert r.status == 200
            await expect(page.locator(f'[data-command-id="{command_id}"]')).to_have_attribute("data-progress", "50")
            await complete(conn, command_id)
            await expect(page.locator(f'[data-command-id="{command_id}"]')).to_have_attribute("data-state", "done")
            async with http.post(f"{base}/genesis/tasks/{command_id}/progress", json={"progress": 90}) as r:
                assert r.status in (200, 409)  # a late report: the command is settled
        await expect(_events(page, "Genesis.Session.ContentRevised")).to_have_count(3)
    await expect(tasks).to_have_count(1)  # the last finished one only
    await expect(tasks).to_have_attribute("data-state", "done")


async def test_at_390_px_nothing_overflows_and_the_page_has_a_favicon(
    start_console: StartConsole, browser: Browser, conn: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    phone = await context.new_page()
    try:
        await _open_with_dev_token(phone, await start_console())
        await phone.get_by_test_id("create-session").click()
        await expect(phone.get_by_test_id("stream-state")).to_have_text("live")
        session_id = str(uuid.UUID(await phone.get_by_test_id("session-id").inner_text()))
        command_id = await submit(conn, session_id, "RequestConceptGeneration", {}, "dev-user")
        await complete(conn, command_id, "FAILED")  # Genesis.Session.ConceptGenerationFailed: the longest name
        await expect(_events(phone)).to_have_count(3)
        overflowing = await phone.evaluate(
            """() => [document.documentElement, ...document.querySelectorAll('[data-testid="event"] *')]
                .filter((e) => e.scrollWidth > e.clientWidth && getComputedStyle(e).overflowX !== "auto")
                .map((e) => `${e.tagName}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)"""
        )
        assert overflowing == []
        await phone.screenshot(path=tmp_path / "console-390.png", full_page=True)
        icon = await phone.locator('link[rel="icon"]').get_attribute("href")
        assert icon
        response = await phone.request.get(phone.url.removesuffix("/console") + icon)
        assert response.status == 200
        assert response.headers["content-type"].startswith("image/")
    finally:
        await context.close()
