"""pyproject's explicit package list must name every package, or installs lose modules."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "ofrace").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
    # the agent is a plain subpackage (no package-dir alias), so imports and paths agree
    assert "package-dir" not in conf
    assert (ROOT / "agents").resolve() == (ROOT / "ofrace" / "agents").resolve()
