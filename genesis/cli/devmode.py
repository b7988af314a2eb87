"""`genesis dev` (what `make run` calls): everything on one machine, nothing but Python needed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import signal
import sys
from pathlib import Path

from genesis.auth.tokens import issue_token
from genesis.cli import dev_env, ports
from genesis.cli.runner import (
    Service,
    api_sockets,
    relay_sockets,
    run_services,
    serve_api,
    serve_dev_agent,
    serve_relay,
)
from genesis.local.services import LocalBroker, LocalPostgres, default_state_dir
from genesis.migrate import migrate
from genesis.settings import Settings
from genesis.telemetry import tracing


def run_dev(settings: Settings) -> int:
    """Starts what is missing, runs the services until Ctrl-C, and stops what it started, whatever happened
    meanwhile: the local PostgreSQL and broker run in sessions of their own (a terminal's Ctrl-C does not reach
    them), so if this process did not stop them nothing would.

    The ports come first: one that is taken stops it before anything starts or the welcome says it runs."""
    sockets = api_sockets(settings)
    try:
        metrics_sockets = relay_sockets(settings)
    except BaseException:
        ports.close(sockets)
        raise
    state = default_state_dir()
    state.mkdir(parents=True, exist_ok=True)
    postgres = broker = None
    try:
        changes: dict[str, object] = {"dev": True}
        if not settings.database_url:
            _say(f"starting embedded PostgreSQL in {state / 'pg'} …")
            postgres = LocalPostgres(state / "pg")
            changes["database_url"] = changes["listen_database_url"] = postgres.start()
        if not settings.kafka_bootstrap_servers:
            broker = LocalBroker(log_path=state / "broker.log")
            _say("starting the local Kafka-protocol broker (Tansu, memory only) …")
            changes["kafka_bootstrap_servers"] = broker.start()
            changes["kafka_enable_idempotence"] = False  # Tansu has no idempotent producer
        if not settings.jwt_secret and not settings.jwt_public_key:
            changes["jwt_secret"] = _dev_secret(state)
        settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]

        asyncio.run(
            migrate(
                settings.database_url,
                kafka_topic=settings.kafka_topic,
                cloudevents_source=settings.cloudevents_source,
                log=_say,
            )
        )
        _welcome(settings)
        _say(dev_env.announce(settings, state))  # the exports for `genesis` and `psql` in another terminal
        tracing.setup("genesis-dev")  # one process, one TracerProvider: API and relay spans under one name
        # One line per service; each runs until Ctrl-C (or until one fails, which stops them all).
        services: list[Service] = [
            lambda stop: serve_api(settings, stop, sockets),
            lambda stop: serve_relay(settings, stop, metrics_sockets),
            lambda stop: serve_dev_agent(settings, stop),  # the development agent (CONTRACT §9)
        ]
        return run_services(services)
    finally:
        # A second Ctrl-C must not cut the teardown short (pg_ctl, our child, inherits the ignore too).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        dev_env.forget(state)
        ports.close(sockets + metrics_sockets)
        if broker is not None:
            broker.stop()
        if postgres is not None:
            _say("stopping embedded PostgreSQL …")
            postgres.stop()


def _dev_secret(state_dir: Path) -> str:
    path = state_dir / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _welcome(settings: Settings) -> None:
    token = issue_token(settings, "dev-user", ttl=12 * 3600)
    base = f"http://{settings.api_host}:{settings.api_port}"
    _say(
        f"""
Genesis is running: API {base}  broker {settings.kafka_bootstrap_servers}  (Ctrl-C stops everything)
A development agent answers RequestConceptGeneration and SubmitFeedback (placeholder results).
Developer console: {base}/console    API reference: {base}/docs

Development token for user dev-user (12 h):
  export TOKEN={token}

Create a session and ask for concepts:
  SESSION=$(curl -s -X POST {base}/genesis/sessions -H "Authorization: Bearer $TOKEN" \\
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -i -X POST {base}/genesis/sessions/$SESSION/commands -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' -d '{{"command_type": "RequestConceptGeneration", "payload": {{}}}}'
"""
    )


def _say(text: str) -> None:
    # `make run | tee run.log` then Ctrl-C: tee may be gone before us, and a failed write must not skip a stop.
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)
