"""Transports: how argv is wrapped and quoted for a node."""

import shlex

import pytest

from ofrace.collect.transport import ExecTransport, LocalTransport, TransportError


def test_exec_appends_argv_as_separate_arguments():
    t = ExecTransport("kubectl exec -n ovn-kubernetes {node} -c ovn-controller --",
                      fields={"node": "ovnkube-node-x"})
    assert t.wrap(["ovs-ofctl", "dump-flows", "br-int"]) == [
        "kubectl", "exec", "-n", "ovn-kubernetes", "ovnkube-node-x", "-c", "ovn-controller",
        "--", "ovs-ofctl", "dump-flows", "br-int"]


def test_exec_field_values_are_quoted():
    t = ExecTransport("docker exec -i {node}", fields={"node": "a b; rm -rf /"})
    assert t.wrap(["true"]) == ["docker", "exec", "-i", "a b; rm -rf /", "true"]


def test_exec_command_placeholder_gets_one_quoted_string():
    t = ExecTransport("ssh -o BatchMode=yes {node} {command}", fields={"node": "hv1"})
    argv = t.wrap(["ovs-ofctl", "dump-flows", "br-int", "table=0,ip"])
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert argv[3] == "hv1"
    assert shlex.split(argv[4]) == ["ovs-ofctl", "dump-flows", "br-int", "table=0,ip"]


def test_exec_env_goes_through_env_command():
    t = ExecTransport("ip netns exec {node}", fields={"node": "ns1"},
                      env={"OVS_RUNDIR": "/var/run/x"})
    assert t.wrap(["ovs-vsctl", "show"]) == [
        "ip", "netns", "exec", "ns1", "env", "OVS_RUNDIR=/var/run/x", "ovs-vsctl", "show"]


def test_exec_unknown_field_is_a_clear_error():
    t = ExecTransport("docker exec {pod}", fields={"node": "x"})
    with pytest.raises(TransportError, match=r"uses \{pod\}"):
        t.wrap(["true"])


def test_local_runs_and_reports_missing_commands():
    out = LocalTransport(env={"OFRACE_T": "42"}).run(["sh", "-c", "echo $OFRACE_T"])
    assert (out.rc, out.stdout) == (0, b"42\n")
    missing = LocalTransport().run(["ofrace-no-such-command"])
    assert missing.rc == 127 and b"not found" in missing.stderr


def test_exec_missing_wrapper_is_a_transport_error():
    with pytest.raises(TransportError, match="command not found"):
        ExecTransport("ofrace-no-such-wrapper {node}", fields={"node": "x"}).run(["true"])
