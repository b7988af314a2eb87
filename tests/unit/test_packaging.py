"""compose.yml, the Dockerfile and the wheel, checked without a Docker engine.

Every container's environment goes through the real `genesis` entry point (settings, required
settings, the CLI parser), with the long-running parts stubbed out; the wheel is built for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from api.app import create_app
from genesis import logs
from genesis.cli import main as cli
from genesis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
GENESIS_SERVICES = ("migrate", "api", "relay")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ is a literal $.
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """What `docker compose` substitutes, for the forms compose.yml may use."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        given = env.get(name)
        if op in (":-", ":?") and given == "":
            given = None
        if given is not None:
            return given
        if op and op.endswith("?"):
            raise AssertionError(f"${{{name}}} must be set: {arg}")
        return arg if op else ""

    return _VARIABLE.sub(one, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yml").read_text())
    return data


def service_env(service: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    """A container's environment on a machine where nothing is set (a bare `docker compose up`)."""
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "environment as a mapping, so anchors can merge"
    return {str(k): interpolate(str(v), env or {}) for k, v in raw.items()}


def image_is_pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(re.search(r"\d", tag))


def test_interpolation_follows_compose_rules() -> None:
    assert interpolate("a${X:-d}b", {}) == "adb"
    assert interpolate("${X:-d}", {"X": ""}) == "d"
    assert interpolate("${X-d}", {"X": ""}) == ""
    assert interpolate("${X}/$$", {"X": "v"}) == "v/$"
    with pytest.raises(AssertionError, match="must be set"):
        interpolate("${X:?set X}", {})


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "kafka", *GENESIS_SERVICES} <= set(services)
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (a built service names its image too)"
        assert image_is_pinned(image), f"{name}: image {image!r} is not pinned to a version"
    assert re.fullmatch(r"postgres:16\.\d+(-\w+)?", services["postgres"]["image"])
    assert services["kafka"]["image"] == "apache/kafka:3.7.0"
    version = PYPROJECT["project"]["version"]
    for name in GENESIS_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == f"genesis-command-service:{version}"


def test_kafka_runs_single_node_kraft_and_the_topic_exists(compose: dict[str, Any]) -> None:
    kafka = service_env(compose["services"]["kafka"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{kafka['KAFKA_NODE_ID']}@kafka:")
    assert "zookeeper" not in json.dumps(kafka).lower()
    relay = service_env(compose["services"]["relay"])
    assert f"//{relay['KAFKA_BOOTSTRAP_SERVERS']}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    topics = [interpolate(str(arg), {}) for arg in compose["services"]["topics"]["command"]]
    assert f"--topic={relay['KAFKA_TOPIC']}" in topics
    # One KAFKA_TOPIC set where compose runs moves the relays and the topic together.
    relay = service_env(compose["services"]["relay"], {"KAFKA_TOPIC": "novel-events"})
    topics = [
        interpolate(str(arg), {"KAFKA_TOPIC": "novel-events"}) for arg in compose["services"]["topics"]["command"]
    ]
    assert relay["KAFKA_TOPIC"] == "novel-events"
    assert f"--topic={relay['KAFKA_TOPIC']}" in topics


def test_genesis_services_reach_postgres_with_its_own_credentials(compose: dict[str, Any]) -> None:
    postgres = service_env(compose["services"]["postgres"])
    for name in GENESIS_SERVICES:
        env = service_env(compose["services"][name])
        for setting in ("DATABASE_URL", "LISTEN_DATABASE_URL"):
            url = urlsplit(env[setting])
            assert (url.hostname, url.port or 5432) == ("postgres", 5432), (name, setting)
            assert url.username == postgres["POSTGRES_USER"]
            assert url.password == postgres["POSTGRES_PASSWORD"]
            assert url.path == "/" + postgres["POSTGRES_DB"]
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true", f"{name}: Apache Kafka supports the idempotent producer"


@pytest.mark.parametrize("name", GENESIS_SERVICES)
def test_each_container_starts_through_the_real_cli(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`genesis <command>` with the container's environment: settings parse, required ones are set."""
    service = compose["services"][name]
    env = service_env(service)
    ran: list[str] = []

    async def fake_migrate(dsn: str, **_: object) -> list[str]:
        ran.append(f"migrate {urlsplit(dsn).hostname}")
        return []

    def fake_run_services(services: list[object]) -> int:
        ran.append(f"services x{len(services)}")
        return 0

    monkeypatch.setattr(cli, "migrate", fake_migrate)
    monkeypatch.setattr("genesis.cli.runner.run_services", fake_run_services)
    # Binding the container's ports here would take this machine's 8000 and 9100 (genesis.cli.ports).
    monkeypatch.setattr("genesis.cli.runner.api_sockets", lambda _settings: [])
    monkeypatch.setattr("genesis.cli.runner.relay_sockets", lambda _settings: [])
    monkeypatch.setattr(logs, "configure", lambda _level: None)  # keep pytest's log capture
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    command = [str(part) for part in service.get("command") or []]
    try:
        args = cli._parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"{name}: `genesis {' '.join(command)}` is not a command of the CLI")
    assert cli.main(command) == 0, f"{name}: start-up refused its environment"
    assert ran == (["migrate postgres"] if name == "migrate" else ["services x1"])

    settings = Settings.from_env(env)
    if args.func is cli._by_service_type:
        kind = {"api": cli._api, "message-relay": cli._relay}[env["SERVICE_TYPE"]]
    else:
        kind = args.func
    assert kind is {"migrate": cli._migrate, "api": cli._api, "relay": cli._relay}[name]
    if kind is cli._api:
        create_app(settings)  # the JWT key and the rest of what the app checks when built
        assert settings.api_host == "0.0.0.0", "the API must listen beyond the container's loopback"
        assert f"{settings.api_port}:{settings.api_port}" in service["ports"]


def test_probes_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "kafka", "api", "relay"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "kafka-broker-api-versions" in " ".join(services["kafka"]["healthcheck"]["test"])
    api = Settings.from_env(service_env(services["api"]))
    relay = Settings.from_env(service_env(services["relay"]))
    assert f"127.0.0.1:{api.api_port}/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert f"127.0.0.1:{relay.relay_metrics_port}/readyz" in " ".join(services["relay"]["healthcheck"]["test"])
    assert services["relay"]["deploy"]["replicas"] == 2

    expected = {
        "migrate": {"postgres": "service_healthy"},
        "api": {"postgres": "service_healthy", "migrate": "service_completed_successfully"},
        "relay": {
            "postgres": "service_healthy",
            "kafka": "service_healthy",
            "migrate": "service_completed_successfully",
        },
    }
    for name, needs in expected.items():
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert needs.items() <= conditions.items(), name
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            target = services[dep]
            if spec["condition"] == "service_healthy":
                assert target.get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{dep} is one-shot; it must not restart"


def dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_is_pinned_slim_non_root_and_runs_genesis() -> None:
    instructions = dockerfile()
    bases = [arg.split()[0] for op, arg in instructions if op == "FROM"]
    assert bases, "no FROM"
    for base in bases:
        assert image_is_pinned(base), f"base image {base!r} is not pinned"
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    users = [arg for op, arg in instructions if op == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert instructions[-1] == ("ENTRYPOINT", '["genesis"]')
    final_stage = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    assert any(op == "USER" for op, _ in final_stage), "USER belongs to the stage that runs"


def test_the_image_gets_every_file_the_wheel_needs() -> None:
    copied = {src for op, arg in dockerfile() if op == "COPY" and "--from" not in arg for src in arg.split()[:-1]}
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *wheel["packages"], *wheel["force-include"]}
    assert needed <= copied, f"not copied into the image: {needed - copied}"
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not needed & ignored, f".dockerignore hides {needed & ignored}"


@pytest.mark.slow
def test_the_wheel_carries_the_sql_and_finds_it_installed(tmp_path: Path) -> None:
    """A real build (hatchling): sql/ lands in the wheel as genesis/sql, where migrate looks when installed."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel_path,) = (tmp_path / "dist").glob("genesis_command_service-*.whl")
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        wheel.extractall(tmp_path / "site")
    for kind in ("migrations", "functions"):
        source = {p.name for p in (ROOT / "sql" / kind).glob("*.sql")}
        assert source, kind
        assert {n.rsplit("/", 1)[1] for n in names if n.startswith(f"genesis/sql/{kind}/")} == source
    assert {"genesis/cli/main.py", "api/app.py", "relay/service.py", "agents/consumer.py"} <= names
    # The pages the API serves: the console's files and the /docs page's own (Swagger UI's come from its package).
    assert {"api/static/console/favicon.svg", "api/static/docs/index.html", "api/static/docs/docs.js"} <= names
    assert not any(n.startswith("tests/") for n in names)
    assert re.search(r"^genesis\s*=\s*genesis\.cli\.main:main$", entry_points, re.MULTILINE)

    # The installed layout, without the checkout on the path: migrate finds its SQL in the package.
    probe = (
        "import json, genesis, genesis.migrate as m; "
        "print(json.dumps([genesis.__file__, str(m.sql_dir()), len(m.migration_files()), len(m.function_files())]))"
    )
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        cwd=site,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    module, sql, migrations, functions = json.loads(result.stdout)
    assert Path(module).is_relative_to(site)
    assert Path(sql) == site / "genesis" / "sql"
    assert migrations == len(list((ROOT / "sql" / "migrations").glob("*.sql")))
    assert functions == len(list((ROOT / "sql" / "functions").glob("*.sql")))
