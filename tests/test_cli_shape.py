"""The command line only parses options and calls a stage (issue 11): each ``cli/``
module stays under ~60 lines of code, each command's body a dozen lines, and no
command module renders, collects or traces by itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parent.parent / "ofrace" / "cli"
MAX_MODULE_LINES = 60     # code: no blank lines, comments or docstrings
MAX_COMMAND_LINES = 12    # a command's body, after its docstring


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str, first: int = 1, last: int | None = None) -> int:
    skip = _docstring_lines(ast.parse(source))
    lines = source.splitlines()
    return sum(1 for no, line in enumerate(lines, 1)
               if first <= no <= (last or len(lines)) and no not in skip
               and line.strip() and not line.strip().startswith("#"))


def command_sizes(source: str) -> dict[str, int]:
    """Each click command's body, in code lines (decorated with ``*.command``/``group``)."""
    sizes = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        names = {ast.unparse(d.func if isinstance(d, ast.Call) else d)
                 for d in node.decorator_list}
        if any(n.endswith((".command", ".group")) for n in names):
            sizes[node.name] = code_lines(source, node.body[0].lineno, node.end_lineno)
    return sizes


MODULES = sorted(CLI.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_cli_module_is_option_handling(path):
    source = path.read_text()
    assert code_lines(source) <= MAX_MODULE_LINES
    for name, size in command_sizes(source).items():
        assert size <= MAX_COMMAND_LINES, f"{path.name}: {name} has {size} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_cli_module_imports_no_other_cli_module_privately(path):
    """Shared options live in cli/options.py, not as a private helper borrowed elsewhere."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ofrace.cli"):
            assert not [a.name for a in node.names if a.name.startswith("_")], path.name


def test_every_command_is_measured():
    commands = {name for path in MODULES for name in command_sizes(path.read_text())}
    assert {"trace", "audit", "collect", "show", "compare", "up", "down", "status",
            "main"} <= commands


def test_a_command_doing_domain_work_is_caught():
    """Negative control: the 87-line ``compare`` this replaced would not pass."""
    body = "\n".join(f"    x{i} = {i}" for i in range(40))
    fat = f'@click.command()\ndef compare():\n    """Doc."""\n{body}\n'
    assert command_sizes(fat)["compare"] == 40 > MAX_COMMAND_LINES
    module = "import click\n" + "\n".join(f"y{i} = {i}" for i in range(61))
    assert code_lines(module) > MAX_MODULE_LINES


@pytest.mark.parametrize("command, spellings", [
    ("trace", {"--snapshot", "-i", "--inventory", "--lab", "--json"}),
    ("audit", {"--snapshot", "-i", "--inventory", "--lab", "--json"}),
    ("compare", {"--snapshot", "-i", "--inventory", "--lab", "--json"}),
    ("collect", {"-i", "--inventory", "--lab", "--json"}),
])
def test_shared_options_keep_their_spellings(command, spellings):
    from ofrace.cli import main

    opts = {o for p in main.commands[command].params for o in p.opts + p.secondary_opts}
    assert spellings <= opts


@pytest.mark.parametrize("command", ["trace", "audit", "compare", "collect"])
def test_lab_and_inventory_together_is_one_line(command, tmp_path):
    from click.testing import CliRunner

    from ofrace.cli import main

    result = CliRunner().invoke(main, [command, "--lab", "-i", str(tmp_path / "x.toml")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "ofrace: error: give either --lab or --inventory, not both"
