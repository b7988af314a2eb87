"""Settings: defaults, and one clear SettingsError naming each malformed setting."""

from __future__ import annotations

import pytest

from genesis.settings import Settings, SettingsError


def test_defaults_when_the_environment_says_nothing() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.api_host, settings.api_port, settings.kafka_topic) == ("127.0.0.1", 8000, "domain-events")
    assert (settings.relay_poll_interval, settings.relay_batch_size) == (5.0, 100)
    assert (settings.relay_max_retries, settings.relay_retry_base_delay) == (3, 1.0)
    assert settings.jwt_algorithms == ("HS256",)
    assert settings.command_timeout == 900.0
    assert settings.relay_retention == 7 * 86400.0
    assert (settings.log_level, settings.cors_origins, settings.dev) == ("INFO", (), False)
    assert settings.kafka_enable_idempotence is None  # auto: decided from what the broker offers


@pytest.mark.parametrize(("raw", "value"), [("auto", None), ("AUTO", None), ("false", False), ("on", True)])
def test_idempotence_is_auto_true_or_false(raw: str, value: bool | None) -> None:
    assert Settings.from_env({"KAFKA_ENABLE_IDEMPOTENCE": raw}).kafka_enable_idempotence is value


def test_blank_values_count_as_unset() -> None:
    assert Settings.from_env({"API_PORT": "  ", "KAFKA_TOPIC": "", "JWT_ALGORITHMS": ""}) == Settings()


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://db/genesis",
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "KAFKA_ENABLE_IDEMPOTENCE": "yes",
            "JWT_ALGORITHMS": "RS256, ES256",
            "API_PORT": " 8080 ",
            "RELAY_POLL_INTERVAL": "0.5",
            "RELAY_MAX_RETRIES": "0",
            "LOG_LEVEL": "debug",
            "CORS_ORIGINS": "http://a.test, http://b.test,",
            "GENESIS_DEV": "off",
        }
    )
    assert settings.database_url == "postgresql://db/genesis"
    assert settings.listen_database_url == "postgresql://db/genesis"  # defaults to DATABASE_URL
    assert settings.kafka_enable_idempotence is True
    assert settings.jwt_algorithms == ("RS256", "ES256")
    assert settings.api_port == 8080
    assert settings.relay_poll_interval == 0.5
    assert settings.relay_max_retries == 0
    assert settings.log_level == "DEBUG"
    assert settings.cors_origins == ("http://a.test", "http://b.test")
    assert settings.dev is False


def test_listen_database_url_can_differ() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://pgbouncer/x", "LISTEN_DATABASE_URL": "postgresql://pg/x"}
    )
    assert settings.listen_database_url == settings.listen_dsn == "postgresql://pg/x"
    # Settings built in code (tests, dataclasses.replace) may leave it empty: LISTEN then uses DATABASE_URL.
    assert Settings(database_url="postgresql://db/x").listen_dsn == "postgresql://db/x"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_PORT", "abc"),
        ("API_PORT", "70000"),
        ("API_PORT", "-1"),
        ("RELAY_METRICS_PORT", "http"),
        ("DATABASE_URL", "mysql://db/genesis"),
        ("DATABASE_URL", "postgresql://[db/genesis"),
        ("LISTEN_DATABASE_URL", "db:5432"),
        ("DB_POOL_MAX", "0"),
        ("DB_STATEMENT_CACHE_SIZE", "-1"),
        ("DB_STATEMENT_CACHE_SIZE", "off"),
        ("DB_POOL_MAX", "2.5"),
        ("RELAY_POLL_INTERVAL", "soon"),
        ("RELAY_POLL_INTERVAL", "0"),
        ("RELAY_POLL_INTERVAL", "-5"),
        ("RELAY_POLL_INTERVAL", "nan"),
        ("RELAY_BATCH_SIZE", "0"),
        ("RELAY_BATCH_SIZE", "many"),
        ("RELAY_MAX_RETRIES", "-1"),
        ("RELAY_RETRY_BASE_DELAY", "x"),
        ("RELAY_LEASE", "0"),
        ("RELAY_RETENTION", "7d"),
        ("RELAY_SWEEP_INTERVAL", "-1"),
        ("COMMAND_TIMEOUT", "forever"),
        ("RELAY_LEASE", "inf"),
        ("RELAY_RETENTION", "1e300"),  # past PostgreSQL's intervals: it crashed after "relay started"
        ("RELAY_RETRY_BASE_DELAY", "315360001"),
        ("RELAY_MAX_RETRIES", "21"),  # its last delay would overflow an interval
        ("RELAY_BATCH_SIZE", "2147483648"),  # past a PostgreSQL integer
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost:notaport"),  # it retried forever
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,,k2:9092"),
        ("KAFKA_BOOTSTRAP_SERVERS", "k1:70000"),
        ("KAFKA_BOOTSTRAP_SERVERS", "PLAINTEXT://k1:9092"),
        ("KAFKA_TOPIC", "bad topic!"),
        ("KAFKA_TOPIC", ".."),
        ("KAFKA_TOPIC", "t" * 250),
        ("KAFKA_ENABLE_IDEMPOTENCE", "maybe"),
        ("GENESIS_DEV", "2"),
        ("JWT_ALGORITHMS", "none"),
        ("JWT_ALGORITHMS", "HS256,PS999"),
        ("JWT_ALGORITHMS", ","),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_a_malformed_setting_is_one_line_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(name), message
    assert "\n" not in message


def test_require_names_the_missing_setting() -> None:
    settings = Settings()
    with pytest.raises(SettingsError, match=r"^DATABASE_URL is required"):
        settings.require("database_url")
    with pytest.raises(SettingsError, match=r"^KAFKA_BOOTSTRAP_SERVERS is required"):
        Settings(database_url="postgresql://x").require("database_url", "kafka_bootstrap_servers")
    Settings(database_url="postgresql://x").require("database_url")


def test_require_jwt_key() -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        Settings().require_jwt_key()
    Settings(jwt_secret="s").require_jwt_key()
    Settings(jwt_public_key="-----BEGIN PUBLIC KEY-----").require_jwt_key()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.api_port = 1  # type: ignore[misc]


def test_a_relay_lease_without_room_for_a_publish_attempt_and_the_hand_over_stops_start_up() -> None:
    Settings().require_relay_lease()  # 30 s against 5 s
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"RELAY_LEASE": "6.4", "RELAY_PUBLISH_TIMEOUT": "5"}).require_relay_lease()
    (line,) = str(refused.value).splitlines()
    assert "RELAY_LEASE" in line
    assert "RELAY_PUBLISH_TIMEOUT" in line
    Settings.from_env({"RELAY_LEASE": "6.5", "RELAY_PUBLISH_TIMEOUT": "5"}).require_relay_lease()


def test_genesis_relay_refuses_to_start_with_such_a_lease(capsys: pytest.CaptureFixture[str]) -> None:
    from genesis.cli.main import main

    env = {"DATABASE_URL": "postgresql://x", "KAFKA_BOOTSTRAP_SERVERS": "x:9", "RELAY_LEASE": "3"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("RELAY_PUBLISH_TIMEOUT", raising=False)
        assert main(["relay"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "genesis: RELAY_LEASE (3s) must be at least RELAY_PUBLISH_TIMEOUT (5s) + 1.5s"


def test_where_agents_reach_the_api() -> None:
    assert Settings.from_env({}).api_url == "http://127.0.0.1:8000"
    assert Settings.from_env({"API_HOST": "0.0.0.0", "API_PORT": "18002"}).api_url == "http://127.0.0.1:18002"
    given = Settings.from_env({"GENESIS_API_URL": "https://genesis.example/", "AGENT_STEP_DELAY": "0.1"})
    assert (given.api_url, given.agent_step_delay, given.agent_group) == (
        "https://genesis.example",
        0.1,
        "genesis-dev-agent",
    )
    with pytest.raises(SettingsError, match="GENESIS_API_URL"):
        Settings.from_env({"GENESIS_API_URL": "genesis.example:8000"})
    with pytest.raises(SettingsError, match="AGENT_STEP_DELAY"):
        Settings.from_env({"AGENT_STEP_DELAY": "0"})


def test_well_formed_kafka_settings_and_the_largest_values_are_accepted() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1.example.com:9092, 10.0.0.2:9093,[::1]:9094",
            "KAFKA_TOPIC": "genesis.domain-events_v1",
            "RELAY_MAX_RETRIES": "20",
            "RELAY_RETENTION": "315360000",
        }
    )
    assert settings.kafka_bootstrap_servers == "k1.example.com:9092,10.0.0.2:9093,[::1]:9094"
    assert settings.kafka_topic == "genesis.domain-events_v1"
    assert (settings.relay_max_retries, settings.relay_retention) == (20, 315360000.0)
