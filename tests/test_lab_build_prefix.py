"""`lab up --ovn PREFIX`: every program and schema comes from the build, sessions too."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ofrace.errors import LabError
from ofrace.lab import command
from ofrace.lab.layout import LabLayout


@pytest.fixture
def build(tmp_path):
    """A make-install tree with the programs `use_build` checks for."""
    for relative in ("bin/ovn-controller", "bin/ovsdb-tool", "bin/ovs-vsctl",
                     "sbin/ovs-vswitchd", "sbin/ovsdb-server"):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    yield tmp_path
    command.use_build(None)


def test_programs_and_schemas_come_from_the_build(build):
    command.use_build(build)
    assert command.find_program("ovs-vswitchd") == str(build / "sbin" / "ovs-vswitchd")
    assert command.find_program("ovn-controller") == str(build / "bin" / "ovn-controller")
    assert command.shared_file("ovn/ovn-sb.ovsschema") == build / "share/ovn/ovn-sb.ovsschema"
    # a program the build lacks still comes from the system
    assert command.find_program("sh") != str(build / "bin" / "sh")


def test_sessions_on_a_chassis_find_the_build_first(build, tmp_path):
    command.use_build(build)
    env = LabLayout(tmp_path / "lab").chassis_env("c1")
    assert env["PATH"].split(":")[:2] == [str(build / "bin"), str(build / "sbin")]
    assert env["OVS_RUNDIR"] == str(tmp_path / "lab" / "c1")


def test_without_a_build_nothing_changes(tmp_path):
    command.use_build(None)
    assert "PATH" not in LabLayout(tmp_path / "lab").chassis_env("c1")
    assert str(command.shared_file("ovn/ovn-nb.ovsschema")) == "/usr/share/ovn/ovn-nb.ovsschema"


def test_a_directory_that_is_no_build_is_one_line(tmp_path):
    with pytest.raises(LabError, match="is not an OVN build prefix: no bin/ovn-controller"):
        command.use_build(tmp_path)
    assert command.build_prefix() is None


def test_the_build_survives_in_the_lab_state(build, tmp_path, monkeypatch):
    """A later `lab verify`/`down` process runs the same build as `up` did."""
    from ofrace.lab.lab import Lab

    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    (lab_dir / "lab.json").write_text(
        json.dumps({"version": 2, "status": "up", "ovn_prefix": str(build)}))
    command.use_build(None)
    Lab(lab_dir)
    assert command.build_prefix() == build
    os.unlink(build / "bin" / "ovn-controller")
    command.use_build(None)
    lab = Lab(lab_dir)   # a removed build: status and down still work, and say why
    assert "no bin/ovn-controller" in lab.build_problem
