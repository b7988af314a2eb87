"""Real services for the tests.

PostgreSQL: TEST_DATABASE_URL when set, else testcontainers' PostgreSQL when a Docker engine answers,
else the embedded server. Kafka: TEST_KAFKA_BOOTSTRAP_SERVERS, else testcontainers' Kafka, else
Apache Kafka from Maven Central when java and mvn work, else the local Tansu broker (tests/brokers.py,
which also holds the broker fixtures). A template database is migrated once per run; each test gets a
fresh copy.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from genesis import db
from genesis.auth.tokens import issue_token
from genesis.local.services import LocalPostgres
from genesis.migrate import migrate
from genesis.settings import Settings
from tests import brokers
from tests.brokers import docker_answers as _docker_answers
from tests.brokers import kafka_bootstrap, kafka_cluster, tansu_bootstrap

__all__ = ["kafka_bootstrap", "kafka_cluster", "tansu_bootstrap"]  # fixtures, shared with every test

JWT_SECRET = "test-secret-" + "x" * 32
STREAM_SECRET = (
    "stream-secret-" + "s" * 32
)  # what an API verifying with a public key or a JWKS signs stream tokens with


def pytest_report_header(config: pytest.Config) -> str:
    return brokers.header()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in brokers.summary():
        terminalreporter.write_line(line)


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def on_server(admin_url: str, *statements: str) -> None:
    """Runs DDL such as CREATE/DROP DATABASE, which needs a connection of its own outside a transaction."""
    conn = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    server = LocalPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    name = f"genesis_template_{os.getpid()}"

    asyncio.run(fresh_database(pg_admin_url, name, kafka_topic="domain-events", log=lambda _line: None))
    yield name
    asyncio.run(on_server(pg_admin_url, drop_database(name)))


def drop_database(name: str) -> str:
    return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'


async def fresh_database(
    admin_url: str, name: str, *, kafka_topic: str | None = None, log: Callable[[str], None] = print
) -> str:
    """Creates database `name` anew (dropping an old one) and migrates it; returns its URL."""
    await on_server(admin_url, drop_database(name), f'CREATE DATABASE "{name}"')
    dsn = with_database(admin_url, name)
    await migrate(dsn, kafka_topic=kafka_topic, log=log)
    return dsn


@pytest.fixture
async def database_url(pg_admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database of its own for each test."""
    name = f"genesis_test_{uuid.uuid4().hex[:12]}"
    await on_server(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(pg_admin_url, name)
    await on_server(pg_admin_url, drop_database(name))


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await db.connect(database_url, application_name="psql")
    yield connection
    await connection.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, listen_database_url=database_url, jwt_secret=JWT_SECRET)


@pytest.fixture
def make_token(settings: Settings) -> Callable[..., str]:
    def make(user: str = "alice", ttl: int = 600) -> str:
        return issue_token(settings, user, ttl)

    return make


@pytest.fixture
def auth(make_token: Callable[..., str]) -> Callable[[str], dict[str, str]]:
    """Headers that authenticate as `user`."""

    def headers(user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(user)}"}

    return headers


@pytest.fixture
async def client(
    settings: Settings, aiohttp_client: Callable[[web.Application], Any]
) -> TestClient[web.Request, web.Application]:
    from api.app import create_app

    test_client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(settings))
    return test_client


@pytest.fixture
async def session_id(client: TestClient[web.Request, web.Application], auth: Callable[[str], dict[str, str]]) -> str:
    response = await client.post("/genesis/sessions", headers=auth("alice"))
    assert response.status == 201
    body = await response.json()
    return str(body["id"])
