"""The AsyncAPI document (genesis/asyncapi.py): committed as generated, a message for every event type the SQL
records, and valid for the reference parser (@asyncapi/parser, under Node)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from genesis import asyncapi, events
from genesis.migrate import sql_dir

NODE_TOOLS = Path(__file__).resolve().parents[1] / "node"
# A quoted event type in SQL source: 'Genesis.Session.Created'
_SQL_EVENT = re.compile(r"'([A-Z][A-Za-z0-9]*(?:\.[A-Z][A-Za-z0-9]*){2,3})'")


def test_the_committed_document_is_the_generated_one() -> None:
    assert asyncapi.COMMITTED.read_text() == asyncapi.text(asyncapi.document()), (
        "docs/asyncapi.json is out of date: run .venv/bin/python -m genesis.asyncapi"
    )


def test_every_event_type_the_sql_functions_record_has_a_message_and_no_other() -> None:
    named = {
        name
        for path in (sql_dir() / "functions").glob("*.sql")
        for name in _SQL_EVENT.findall(path.read_text())
        if events.is_valid_event_type(name)
    }
    assert len(named) >= 10
    assert set(asyncapi.document()["components"]["messages"]) == named


def test_the_served_channel_follows_the_settings() -> None:
    doc = asyncapi.document("agents-topic", "/elsewhere")
    assert doc["channels"][asyncapi.CHANNEL]["address"] == "agents-topic"
    assert doc["components"]["schemas"]["RecordHeaders"]["properties"]["ce_source"]["default"] == "/elsewhere"


def _validate_with_the_parser(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not on PATH: the AsyncAPI parser (@asyncapi/parser) cannot run here")
    installed = NODE_TOOLS / "node_modules" / ".package-lock.json"  # written by npm ci
    if not installed.exists() or installed.stat().st_mtime < (NODE_TOOLS / "package-lock.json").stat().st_mtime:
        npm = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=NODE_TOOLS, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if npm.returncode != 0:
            pytest.skip(f"npm ci in tests/node failed (no registry?), the parser cannot run: {npm.stderr[-500:]}")
    return subprocess.run(
        ["node", "validate_asyncapi.mjs", str(path)], cwd=NODE_TOOLS, capture_output=True, text=True, timeout=120
    )


def test_the_asyncapi_parser_accepts_it() -> None:
    checked = _validate_with_the_parser(asyncapi.COMMITTED)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    verdict = json.loads(checked.stdout.splitlines()[-1])
    assert verdict == {"ok": True, "messages": len(asyncapi.document()["components"]["messages"])}


def test_the_parser_would_refuse_a_broken_one(tmp_path: Path) -> None:
    broken = json.loads(asyncapi.text(asyncapi.document()))
    broken["operations"]["publishDomainEvents"]["action"] = "publish"  # AsyncAPI 2's word, not 3.0's
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    checked = _validate_with_the_parser(tmp_path / "broken.json")
    assert checked.returncode == 1
    assert '"action"' in checked.stdout
