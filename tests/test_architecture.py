"""The house rules, read from the source: data flows one way, and nothing imports in a circle.

Stages in import order (README "Design", docs/architecture.md).  A module may import
its own stage and earlier ones, never a later one.  The snapshot is the data model
every stage reads, so it sits below collect, which produces it.  Imports inside
functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ofrace"

STAGES = [
    ("base", ["ofrace", "ofrace.errors", "ofrace.memory", "ofrace.agents"]),
    ("snapshot", ["ofrace.snapshot"]),
    ("collect", ["ofrace.collect"]),
    ("openflow", ["ofrace.openflow"]),
    ("simulate", ["ofrace.simulate"]),
    ("ovn", ["ofrace.ovn"]),
    ("trace", ["ofrace.trace"]),
    ("annotate", ["ofrace.annotate"]),
    ("analyses", ["ofrace.audit", "ofrace.compare"]),
    ("render", ["ofrace.render", "ofrace.lab"]),
    ("cli", ["ofrace.cli", "ofrace.__main__"]),
]
ENGINE = ("ofrace.openflow", "ofrace.simulate")
OVN_MEANING = ("ofrace.ovn", "ofrace.trace", "ofrace.annotate")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ofrace modules ``name`` imports anywhere in its body (submodules resolved)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _stage(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


GRAPH = _graph()


def test_every_module_has_a_stage():
    assert [m for m in GRAPH if _stage(m) is None] == []


def _later(graph: dict[str, set[str]], module: str) -> list[str]:
    return sorted(m for m in graph[module] if _stage(m) > _stage(module))


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_later_stage(module):
    later = _later(GRAPH, module)
    assert later == [], (f"{module} ({STAGES[_stage(module)][0]}) imports later stages: "
                         + ", ".join(f"{m} ({STAGES[_stage(m)][0]})" for m in later))


def test_the_engine_knows_openflow_only():
    """OpenFlow execution records packet state; OVN meaning is read from it later."""
    bad = sorted((m, d) for m in GRAPH if m.startswith(ENGINE)
                 for d in GRAPH[m] if d.startswith(OVN_MEANING))
    assert bad == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_checks_can_fail():
    """Negative controls: a made-up backwards import and a made-up circle are caught."""
    assert _stage("ofrace.trace.cluster") > _stage("ofrace.simulate.engine")
    backwards = {**GRAPH, "ofrace.simulate.engine": GRAPH["ofrace.simulate.engine"]
                 | {"ofrace.annotate.annotated", "ofrace.ovn.versions"}}
    assert _later(backwards, "ofrace.simulate.engine") == ["ofrace.annotate.annotated",
                                                           "ofrace.ovn.versions"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    here = _imports("ofrace.simulate.x", ROOT / "tests" / "test_architecture.py",
                    {"ofrace.simulate"})
    assert here == set()


def test_the_agent_imports_nothing_of_ofrace():
    """The agent is streamed to nodes alone: stdlib only."""
    agent = PACKAGE / "agents" / "ofrace_agent.py"
    tree = ast.parse(agent.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [n for n in names if n.startswith("ofrace")]


def test_the_engine_names_no_ovn_register_role():
    """OVN's register roles live in ofrace.ovn.versions; the engine records packet state."""
    roles = ("reg10", "reg11", "reg12", "reg13", "reg14", "reg15", '"logical"')
    found = [(p.name, r) for stage in ("openflow", "simulate")
             for p in (PACKAGE / stage).glob("*.py") for r in roles if r in p.read_text()]
    assert found == []


def test_a_flow_step_records_the_packet_it_matched():
    from conftest import recorded

    from ofrace.trace.cluster import ClusterTracer
    from ofrace.trace.request import start_from_short_form

    tracer = ClusterTracer(recorded("kind")[0])
    start = start_from_short_form(tracer, "default_nginx-deployment-9456bbbf9-x6pc6",
                                  "10.244.2.5:53", "udp")
    flows = [s for s in tracer.trace(start).root.root.walk() if s.kind == "flow"]
    assert flows and all("logical" not in s.data for s in flows)
    assert flows[0].data["packet"]["in_port"] == start.packet["in_port"]
    assert any(s.data["packet"].get("reg14") for s in flows)  # OVN's inport, as plain state
