"""`genesis dev` (what `make run` calls): everything on one machine, nothing but Python needed."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import sys
from pathlib import Path

from genesis import tracing
from genesis.localservices import LocalBroker, LocalPostgres, default_state_dir
from genesis.migrate import migrate
from genesis.runner import run_services, serve_api, serve_relay
from genesis.settings import Settings
from genesis.tokens import issue_token


def run_dev(settings: Settings) -> int:
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
        tracing.setup("genesis-dev")  # one process, one TracerProvider: API and relay spans under one name
        return run_services([lambda stop: serve_api(settings, stop), lambda stop: serve_relay(settings, stop)])
    finally:
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
    print(text, file=sys.stderr, flush=True)
