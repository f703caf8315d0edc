"""One error model and one exit-code table: ``ofrace.errors.Exit`` is README's table,
and every error ofrace raises for a user is an ``OfraceError`` with its code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ofrace.collect.agent import AgentError
from ofrace.collect.transport import LimitExceeded, TransportError
from ofrace.errors import (
    EnvironmentFailure,
    Exit,
    InputError,
    LabError,
    MissingDataError,
    OfraceError,
    ToolError,
)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_exit_codes(text: str) -> dict[int, str]:
    """The rows of the table under README's "Exit codes" line: code -> meaning."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Exit codes"))
    rows: dict[int, str] = {}
    for line in lines[start + 1:]:
        if not line.strip():
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].isdigit():
            rows[int(cells[0])] = cells[1]
        elif not line.startswith("|"):
            break
    return rows


def test_readme_table_is_errors_exit():
    rows = readme_exit_codes(README.read_text())
    assert sorted(rows) == sorted(int(code) for code in Exit)
    assert all(meaning for meaning in rows.values())


def test_a_readme_row_missing_or_extra_is_caught():
    """Negative control: the parser sees a dropped row and an invented code."""
    text = README.read_text()
    dropped = re.sub(r"^\| 3 \|.*\n", "", text, count=1, flags=re.M)
    assert dropped != text
    assert sorted(readme_exit_codes(dropped)) != sorted(int(c) for c in Exit)
    extra = text.replace("| 70 |", "| 6 | something new |\n| 70 |", 1)
    assert 6 in readme_exit_codes(extra)


@pytest.mark.parametrize("error, code", [
    (InputError, Exit.INPUT), (MissingDataError, Exit.UNKNOWN),
    (EnvironmentFailure, Exit.ENVIRONMENT), (ToolError, Exit.ENVIRONMENT),
    (LabError, Exit.ENVIRONMENT), (TransportError, Exit.ENVIRONMENT),
    (LimitExceeded, Exit.ENVIRONMENT), (AgentError, Exit.ENVIRONMENT),
])
def test_each_error_has_its_code(error, code):
    assert issubclass(error, OfraceError)
    assert error("x").exit_code == code


def _raised_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def test_no_generic_exception_reaches_the_user():
    """RuntimeError, Exception or SystemExit raised in ofrace/ would skip the exit-code
    table (the node agent, stdlib-only and run on the node, reports in its own document)."""
    generic = {"RuntimeError", "Exception", "SystemExit", "OSError", "IOError"}
    found = {str(p.relative_to(ROOT)): sorted(_raised_names(p) & generic)
             for p in (ROOT / "ofrace").rglob("*.py") if "agents" not in p.parts}
    assert not {p: names for p, names in found.items() if names}


def test_the_generic_raise_check_sees_one(tmp_path):
    """Negative control for the check above."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    raise RuntimeError('x')\n")
    assert _raised_names(module) == {"RuntimeError"}
