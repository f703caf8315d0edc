"""Text from nodes and databases prints as itself: rich markup in a hostname or error does
not crash a renderer, and terminal escape sequences never reach the terminal raw."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from rich.console import Console
from rich.errors import MarkupError

from ofrace.audit.cluster import audit_snapshot
from ofrace.cli import main
from ofrace.collect.cluster import CollectEvent
from ofrace.render.audit import render_audit
from ofrace.render.collect import ProgressPrinter
from ofrace.render.escape import escape
from ofrace.render.summary import print_summary
from ofrace.snapshot import Bridge, Problem, Snapshot

HOSTILE = "x[/x][bold]\x1b[2J\x1b]0;owned\x07\x9b31m\x7f\u202e"
RAW = ("\x1b", "\x07", "\x9b", "\x7f", "\u202e")
NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"


def assert_clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(ch)


def test_escape_makes_control_characters_visible_and_markup_inert():
    out = escape(HOSTILE)
    assert_clean(out)
    assert "\\e[2J" in out and "\\x07" in out and "\\x9b" in out and "\\u202e" in out
    console = Console(file=io.StringIO(), width=200)
    console.print(out)
    assert "x[/x][bold]" in console.file.getvalue()  # printed as written
    assert escape("a\tb\nc", multiline=True, markup=False) == "a\tb\nc"
    assert escape("a\tb\nc", markup=False) == "a\\tb\\nc"
    assert escape("plain-name_1.2") == "plain-name_1.2"
    with pytest.raises(MarkupError):  # what unescaped node text did
        Console(file=io.StringIO()).print(HOSTILE)


def hostile_snapshot() -> Snapshot:
    """The kind snapshot with a node whose name, hostname, bridge and errors are hostile."""
    snapshot = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    worker = snapshot.chassis.pop("ovn-worker2")
    worker.name = "w2" + HOSTILE
    worker.hostname = HOSTILE
    worker.transport = "exec" + HOSTILE
    worker.ovn_version = HOSTILE
    worker.bridges["br" + HOSTILE] = Bridge(name="br" + HOSTILE, flows=["garbled" + HOSTILE],
                                            errors={"groups": HOSTILE})
    worker.problems.append(Problem(worker.name, "br" + HOSTILE, "error " + HOSTILE))
    snapshot.chassis[worker.name] = worker
    dead = snapshot.chassis["ovn-control-plane"]
    dead.bridges["br-int"].flows = []
    dead.bridges["br-int"].errors = {"flows": "vswitchd says " + HOSTILE}
    snapshot.problems.append(Problem("southbound" + HOSTILE, "read", HOSTILE))
    return snapshot


def test_summary_and_progress_print_hostile_text_as_text():
    snapshot = hostile_snapshot()
    console = Console(file=io.StringIO(), width=300, force_terminal=True)
    print_summary(snapshot, console)
    printer = ProgressPrinter(console, 2)
    printer(CollectEvent("done", HOSTILE, HOSTILE))
    printer(CollectEvent("failed", HOSTILE, "error " + HOSTILE))
    printer.close()
    text = console.file.getvalue()
    assert "[/x][bold]" in text  # shown, not interpreted
    # force_terminal: rich's own styling uses ESC; none may come from the node's text
    assert text.count("\x1b[2J") == 0 and "\x1b]0;" not in text
    for ch in RAW[1:]:
        assert ch not in text


def test_audit_renders_hostile_text():
    snapshot = hostile_snapshot()
    console = Console(file=io.StringIO(), width=300)
    render_audit(audit_snapshot(snapshot), console, details=True)
    text = console.file.getvalue()
    assert_clean(text)
    assert "[/x][bold]" in text


@pytest.mark.parametrize("args", [
    ["show"], ["show", "--json"], ["audit", "--snapshot"], ["audit", "--json", "--snapshot"],
    ["trace", "--from", NGINX, "--to", "10.244.2.5:53", "--udp", "--snapshot"],
    ["trace", "--from", NGINX, "--to", "10.244.2.5:53", "--udp", "--json", "--snapshot"],
    ["trace", "--from", NGINX, "--to", "10.244.2.5:53", "--detailed", "--snapshot"],
])
def test_cli_on_a_hostile_snapshot(tmp_path, args):
    path = tmp_path / "hostile.ofr"
    hostile_snapshot().save(path)
    result = CliRunner().invoke(main, [*args, str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exc_info
    assert result.exit_code in (0, 1, 3, 4), result.output
    assert_clean(result.output)


def test_one_line_errors_escape_node_text(tmp_path):
    snapshot = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    worker = snapshot.chassis["ovn-worker"]
    worker.reachable = False
    worker.problems = [Problem("ovn-worker", "collect", "refused " + HOSTILE)]
    path = tmp_path / "unreachable.ofr"
    snapshot.save(path)
    result = CliRunner().invoke(main, ["trace", "--snapshot", str(path), "--from", NGINX,
                                       "--to", "10.244.2.5:53"])
    assert result.exit_code == 4
    assert "refused x[/x][bold]\\e[2J" in result.output
    assert_clean(result.output)
    assert result.output.strip().count("\n") == 0
