"""Settings: read from the environment once at start-up, validated, frozen."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


# Seconds a claimed batch has, at the shortest lease allowed, from its claim to the producer (relay/publisher.py).
RELAY_HANDOVER_SLACK = 0.5


class SettingsError(Exception):
    """A missing or malformed setting; the message is one line naming it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = ""
    listen_database_url: str = ""  # a direct connection for LISTEN (pgbouncer cannot carry it)
    kafka_bootstrap_servers: str = ""
    kafka_topic: str = "domain-events"
    kafka_enable_idempotence: bool | None = None  # None: auto, decided at relay start (relay/brokerinfo.py)
    cloudevents_source: str = "/infinitescribe/genesis"  # ce_source of every record (a URI-reference)
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_jwks_url: str = ""  # an identity provider's JWKS document; the token's kid picks the key
    jwt_jwks_timeout: float = 5.0  # one fetch of the JWKS document gives up after this long
    jwt_jwks_refetch_interval: float = 30.0  # an unknown kid refetches the document at most this often
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str = ""
    jwt_issuer: str = ""
    stream_token_ttl: float = 60.0  # a stream token opens a stream within this long (CONTRACT §5)
    stream_token_secret: str = ""  # signs stream tokens; required with JWT_PUBLIC_KEY / JWT_JWKS_URL
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_header_timeout: float = 30.0  # a request head must be complete within this long (slowloris)
    api_keepalive_timeout: float = 75.0  # an idle keep-alive connection is closed after this long
    db_pool_max: int = 8  # more connections than a few per database core only adds contention
    db_statement_cache_size: int = 100  # asyncpg's prepared statements per connection; 0: none (PgBouncer < 1.21)
    relay_poll_interval: float = 5.0
    relay_batch_size: int = 100
    relay_max_retries: int = 3
    relay_retry_base_delay: float = 1.0
    relay_lease: float = 30.0
    relay_publish_timeout: float = 5.0  # one publish attempt gives up after this long
    relay_listen: bool = True  # false: poll only (no LISTEN connection)
    relay_metrics_port: int = 9100
    relay_retention: float = 7 * 86400.0
    relay_sweep_interval: float = 60.0
    command_timeout: float = 900.0
    sse_heartbeat: float = 15.0
    metrics_refresh_interval: float = 5.0  # how often the outbox gauges are recomputed (never per scrape)
    sse_write_timeout: float = 10.0
    sse_buffer: int = 256
    sse_max_streams_per_user: int = 16  # open event streams one user may hold in one API process
    sse_max_streams: int = 10_000  # open event streams one API process holds in all
    log_level: str = "INFO"
    cors_origins: tuple[str, ...] = ()
    dev: bool = False
    trace_sql_spans: bool = (
        False  # a CLIENT span per SQL call of the API, when it exports spans (genesis/telemetry/db_spans.py)
    )
    genesis_api_url: str = ""  # where agents reach the API; empty: API_HOST:API_PORT of this machine
    agent_group: str = "genesis-dev-agent"  # the development agent's consumer group
    agent_step_delay: float = 0.5  # seconds the development agent spends on each step of a task

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        database_url = _get(e, "DATABASE_URL", _postgres_url, d.database_url)
        algorithms = _get(e, "JWT_ALGORITHMS", _csv, d.jwt_algorithms)
        bad = [a for a in algorithms if a not in _ALGORITHMS]
        if bad or not algorithms:
            raise SettingsError(f"JWT_ALGORITHMS: unsupported {bad or 'empty'}; use {sorted(_ALGORITHMS)}")
        log_level = _get(e, "LOG_LEVEL", str, d.log_level).upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
        return cls(
            database_url=database_url,
            listen_database_url=_get(e, "LISTEN_DATABASE_URL", _postgres_url, database_url),
            kafka_bootstrap_servers=_get(e, "KAFKA_BOOTSTRAP_SERVERS", _bootstrap_servers, d.kafka_bootstrap_servers),
            kafka_topic=_get(e, "KAFKA_TOPIC", _topic, d.kafka_topic),
            kafka_enable_idempotence=_get(e, "KAFKA_ENABLE_IDEMPOTENCE", _auto_bool, d.kafka_enable_idempotence),
            cloudevents_source=_get(e, "CLOUDEVENTS_SOURCE", _nonempty, d.cloudevents_source),
            jwt_secret=_get(e, "JWT_SECRET", str, d.jwt_secret),
            jwt_public_key=_get(e, "JWT_PUBLIC_KEY", str, d.jwt_public_key),
            jwt_jwks_url=_get(e, "JWT_JWKS_URL", _http_url, d.jwt_jwks_url),
            jwt_jwks_timeout=_get(e, "JWT_JWKS_TIMEOUT", _positive_float, d.jwt_jwks_timeout),
            jwt_jwks_refetch_interval=_get(
                e, "JWT_JWKS_REFETCH_INTERVAL", _positive_float, d.jwt_jwks_refetch_interval
            ),
            jwt_algorithms=algorithms,
            jwt_audience=_get(e, "JWT_AUDIENCE", str, d.jwt_audience),
            jwt_issuer=_get(e, "JWT_ISSUER", str, d.jwt_issuer),
            stream_token_ttl=_get(e, "STREAM_TOKEN_TTL", _positive_float, d.stream_token_ttl),
            stream_token_secret=_secret(e, "STREAM_TOKEN_SECRET"),
            api_host=_get(e, "API_HOST", _nonempty, d.api_host),
            api_port=_get(e, "API_PORT", _port, d.api_port),
            api_header_timeout=_get(e, "API_HEADER_TIMEOUT", _positive_float, d.api_header_timeout),
            api_keepalive_timeout=_get(e, "API_KEEPALIVE_TIMEOUT", _positive_float, d.api_keepalive_timeout),
            db_pool_max=_get(e, "DB_POOL_MAX", _positive_int, d.db_pool_max),
            db_statement_cache_size=_get(e, "DB_STATEMENT_CACHE_SIZE", _natural_int, d.db_statement_cache_size),
            relay_poll_interval=_get(e, "RELAY_POLL_INTERVAL", _positive_float, d.relay_poll_interval),
            relay_batch_size=_get(e, "RELAY_BATCH_SIZE", _positive_int, d.relay_batch_size),
            relay_max_retries=_get(e, "RELAY_MAX_RETRIES", _retries, d.relay_max_retries),
            relay_retry_base_delay=_get(e, "RELAY_RETRY_BASE_DELAY", _positive_float, d.relay_retry_base_delay),
            relay_lease=_get(e, "RELAY_LEASE", _positive_float, d.relay_lease),
            relay_publish_timeout=_get(e, "RELAY_PUBLISH_TIMEOUT", _positive_float, d.relay_publish_timeout),
            relay_listen=_get(e, "RELAY_LISTEN", _bool, d.relay_listen),
            relay_metrics_port=_get(e, "RELAY_METRICS_PORT", _port, d.relay_metrics_port),
            relay_retention=_get(e, "RELAY_RETENTION", _positive_float, d.relay_retention),
            relay_sweep_interval=_get(e, "RELAY_SWEEP_INTERVAL", _positive_float, d.relay_sweep_interval),
            command_timeout=_get(e, "COMMAND_TIMEOUT", _positive_float, d.command_timeout),
            metrics_refresh_interval=_get(e, "METRICS_REFRESH_INTERVAL", _positive_float, d.metrics_refresh_interval),
            sse_heartbeat=_get(e, "SSE_HEARTBEAT", _positive_float, d.sse_heartbeat),
            sse_write_timeout=_get(e, "SSE_WRITE_TIMEOUT", _positive_float, d.sse_write_timeout),
            sse_buffer=_get(e, "SSE_BUFFER", _positive_int, d.sse_buffer),
            sse_max_streams_per_user=_get(e, "SSE_MAX_STREAMS_PER_USER", _positive_int, d.sse_max_streams_per_user),
            sse_max_streams=_get(e, "SSE_MAX_STREAMS", _positive_int, d.sse_max_streams),
            log_level=log_level,
            cors_origins=_get(e, "CORS_ORIGINS", _csv, d.cors_origins),
            dev=_get(e, "GENESIS_DEV", _bool, d.dev),
            trace_sql_spans=_get(e, "TRACE_SQL_SPANS", _bool, d.trace_sql_spans),
            genesis_api_url=_get(e, "GENESIS_API_URL", _http_url, d.genesis_api_url),
            agent_group=_get(e, "AGENT_GROUP", _nonempty, d.agent_group),
            agent_step_delay=_get(e, "AGENT_STEP_DELAY", _positive_float, d.agent_step_delay),
        )

    @property
    def listen_dsn(self) -> str:
        """Where LISTEN connects: LISTEN_DATABASE_URL, else DATABASE_URL."""
        return self.listen_database_url or self.database_url

    @property
    def api_url(self) -> str:
        """GENESIS_API_URL, else this machine's API (http://127.0.0.1:8000 by default)."""
        if self.genesis_api_url:
            return self.genesis_api_url.rstrip("/")
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        return f"http://{host}:{self.api_port}"

    def require(self, *names: str) -> None:
        """Stops start-up when a setting a command needs is empty."""
        for name in names:
            if not getattr(self, name):
                raise SettingsError(f"{name.upper()} is required but not set")

    def require_relay_lease(self) -> None:
        """A claimed batch is handed to the producer only while its lease leaves room for a whole
        publish (relay/publisher.py: its patience, at least one attempt: the timeout and a second
        more), so the lease must hold that and the time to get there (a claim, building the record
        batches: RELAY_HANDOVER_SLACK), or every batch would be handed back unpublished. Leader
        checks are made before a claim, never inside its lease."""
        least = self.relay_publish_timeout + 1 + RELAY_HANDOVER_SLACK
        if self.relay_lease < least:
            raise SettingsError(
                f"RELAY_LEASE ({self.relay_lease:g}s) must be at least RELAY_PUBLISH_TIMEOUT"
                f" ({self.relay_publish_timeout:g}s) + {1 + RELAY_HANDOVER_SLACK:g}s"
            )

    def require_stream_token_key(self) -> None:
        """Stream tokens are signed by the service itself (genesis/auth/stream_tokens.py): with JWT_SECRET it derives
        their key; verifying with a public key or a JWKS it holds no secret, so it needs one of its own."""
        if not self.stream_token_secret and not self.jwt_secret:
            raise SettingsError(
                "STREAM_TOKEN_SECRET is required with JWT_PUBLIC_KEY or JWT_JWKS_URL: the API signs the event "
                "streams' tokens with it (the same value on every replica, at least 32 characters)"
            )
        if self.stream_token_secret and self.stream_token_secret == self.jwt_secret:
            raise SettingsError("STREAM_TOKEN_SECRET must differ from JWT_SECRET (or be left unset to derive it)")

    def require_jwt_key(self) -> None:
        if not self.jwt_secret and not self.jwt_public_key and not self.jwt_jwks_url:
            raise SettingsError("JWT_SECRET (or JWT_PUBLIC_KEY, or JWT_JWKS_URL) is required but not set")


MAX_INT = 2**31 - 1
MAX_SECONDS = 10 * 365 * 86400
MAX_RETRIES = 20  # the last waits 2^19 x the base delay (at most ten years): within PostgreSQL's intervals
_SERVER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")  # IPv6 in brackets
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's own rule (org.apache.kafka.common.internals.Topic)
MIN_SECRET = 32  # an HMAC-SHA256 key of at least the hash's size (RFC 7518 §3.2)
_ALGORITHMS = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}


def _get(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc} (got {raw!r})") from None


def _secret(env: Mapping[str, str], name: str) -> str:
    """A key: checked like the others, but never echoed in the error line."""
    raw = env.get(name, "").strip()
    if raw and len(raw) < MIN_SECRET:
        raise SettingsError(f"{name}: expected at least {MIN_SECRET} characters (got {len(raw)})")
    return raw


def _nonempty(raw: str) -> str:
    return raw


def _postgres_url(raw: str) -> str:
    # urlsplit refuses a malformed host ("[bad"); asyncpg would say the same later, in a traceback.
    if urlsplit(raw).scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL")
    return raw


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _auto_bool(raw: str) -> bool | None:
    if raw.lower() == "auto":
        return None
    try:
        return _bool(raw)
    except ValueError:
        raise ValueError("expected auto, true or false") from None


def _positive_int(raw: str) -> int:
    value = _int(raw)
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _natural_int(raw: str) -> int:
    value = _int(raw)
    if value < 0:
        raise ValueError("expected zero or a positive integer")
    return value


def _int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected an integer") from None
    if abs(value) > MAX_INT:  # the SQL functions take PostgreSQL integers
        raise ValueError(f"expected an integer up to {MAX_INT}")
    return value


def _retries(raw: str) -> int:
    # The last retry waits RELAY_RETRY_BASE_DELAY x 2^(retries - 1): past this it overflows an interval.
    value = _natural_int(raw)
    if value > MAX_RETRIES:
        raise ValueError(f"expected 0-{MAX_RETRIES} retries")
    return value


def _port(raw: str) -> int:
    value = _int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0-65535")
    return value


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 < value <= MAX_SECONDS:  # also refuses inf and nan; PostgreSQL's intervals and the timers hold this
        raise ValueError(f"expected a positive number of seconds up to {MAX_SECONDS} (ten years)")
    return value


def _bootstrap_servers(raw: str) -> str:
    entries = [entry.strip() for entry in raw.split(",")]
    for entry in entries:
        match = _SERVER.fullmatch(entry)
        if not match or not 0 < int(match["port"]) <= 65535:
            raise ValueError(f"expected host:port[,host:port...], and {entry!r} is not host:port")
    return ",".join(entries)


def _topic(raw: str) -> str:
    if not _TOPIC.fullmatch(raw) or raw in (".", ".."):
        raise ValueError("a Kafka topic name is 1-249 of the characters a-z A-Z 0-9 . _ -")
    return raw


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())
