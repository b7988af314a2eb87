"""The house's one rule of direction: the edges (`api`, `relay`, `agents`) import the core (`genesis`), never each
other, and the core imports no edge, but for its composition root (`genesis.cli`), which starts them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EDGES = ("api", "relay", "agents")
COMPOSITION_ROOT = "genesis.cli"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """Every absolute module an import statement of the file names, anywhere in it (lazy imports included)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the file's own package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}" if base else alias.name) for alias in node.names]
    return found


def offences(room: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / room).rglob("*.py")):
        here = module_name(path)
        for line, name in imported(path):
            target = name.split(".")[0]
            if target not in EDGES or target == room:
                continue
            if room == "genesis" and (here == COMPOSITION_ROOT or here.startswith(COMPOSITION_ROOT + ".")):
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("room", [*EDGES, "genesis"])
def test_imports_point_from_the_edges_to_the_core(room: str) -> None:
    assert offences(room) == []


def test_the_rule_sees_a_breaking_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk would catch a future offender, lazy and relative imports included (else the test above proves
    nothing)."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "relay").mkdir()
    (tmp_path / "relay" / "late.py").write_text("def f():\n    from api.app import create_app\n")
    (tmp_path / "genesis" / "auth").mkdir(parents=True)
    (tmp_path / "genesis" / "auth" / "x.py").write_text("from agents import consumer\n")
    (tmp_path / "genesis" / "cli").mkdir()
    (tmp_path / "genesis" / "cli" / "runner.py").write_text("from relay.service import run_relay\n")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "ok.py").write_text("from . import state\nfrom genesis import db\n")
    assert offences("relay") == ["relay/late.py:2 imports api.app.create_app"]
    assert offences("genesis") == ["genesis/auth/x.py:1 imports agents.consumer"]
    assert offences("api") == []


def test_every_room_says_what_lives_there() -> None:
    for init in [ROOT / room / "__init__.py" for room in EDGES] + sorted((ROOT / "genesis").rglob("__init__.py")):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} has no docstring"
