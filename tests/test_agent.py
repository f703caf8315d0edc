"""The node agent's pure parts, on data recorded from the lab."""

import json
import sys

import pytest
from conftest import recorded
from ofrace.agents import ofrace_agent as agent

from ofrace.collect.agent import AgentError, agent_command, read_agent_output


def test_ovsdb_decoding_keeps_sets_as_lists():
    assert agent.ovsdb_decode(["uuid", "abc"]) == "abc"
    assert agent.ovsdb_decode(["uuid", "abc"], multi=True) == ["abc"]
    assert agent.ovsdb_decode(["set", [1, 2]]) == [1, 2]
    assert agent.ovsdb_decode(["map", [["a", "b"]]]) == {"a": "b"}
    schema = {"tables": {"Bridge": {"columns": {
        "ports": {"type": {"key": "uuid", "min": 0, "max": "unlimited"}},
        "name": {"type": "string"},
        "external_ids": {"type": {"key": "string", "value": "string", "min": 0,
                                  "max": "unlimited"}}}}}}
    assert agent.multi_valued_columns(schema) == {"Bridge": {"ports"}}


def test_bridges_patched_to_br_int():
    snapshot, _ = recorded("kind")
    ovsdb = snapshot.chassis["ovn-worker"].ovsdb
    # br-phys (the tunnel underlay) is not patched to br-int; breth0 is.
    assert agent.related_bridges(ovsdb, "br-int") == ["br-int", "breth0"]


def test_agent_ships_in_the_command_line():
    argv = agent_command({"compress": True})
    assert argv[:2] == ["python3", "-c"]
    assert "zlib.decompress" in argv[2] and len(argv[2]) < 60_000
    assert argv[3] == '{"compress":true}'


def _framed(doc, blobs, compress, chunk=7):
    import io
    out = io.BytesIO()
    writer = agent.FrameWriter(out, compress)
    for text in blobs:
        blob = writer.new_blob()
        data = text.encode()
        for i in range(0, len(data), chunk):  # split anywhere, even inside a character
            writer.frame("B", blob, data[i:i + chunk])
    writer.frame("D", 0, json.dumps(doc).encode())
    writer.close()
    return out.getvalue()


def test_agent_output_frames_round_trip_compressed_or_not():
    snapshot, _ = recorded("kind")
    flows = snapshot.chassis["ovn-worker"].bridges["br-int"].flows
    dump = "NXST_FLOW reply (xid=0x4):\n" + "".join(f" {line}\n" for line in flows)
    doc = {"agent_version": agent.AGENT_VERSION, "bridges": {"br-int": {
        "flows": {"blob": 1}, "groups": {"blob": 2}, "tlv_map": "x"}}}
    for compress in (False, True):
        payload = _framed(doc, [dump, "OFPST_GROUP_DESC reply (OF1.5):\n group_id=1,type=all"
                                "\n"], compress)
        assert (payload[:2] == b"\x1f\x8b") == compress
        got = read_agent_output(payload)
        assert got["bridges"]["br-int"]["flows"] == flows
        assert got["bridges"]["br-int"]["groups"] == ["group_id=1,type=all"]


def test_agent_output_that_ends_early_is_one_error():
    payload = _framed({"agent_version": agent.AGENT_VERSION}, ["x" * 5000], True)
    for cut in (payload[:len(payload) // 2], payload[:-3]):
        with pytest.raises(AgentError, match="truncated or corrupt"):
            read_agent_output(cut)
    plain = _framed({"agent_version": agent.AGENT_VERSION}, ["x" * 50], False)
    with pytest.raises(AgentError, match="truncated frame|no document"):
        read_agent_output(plain[:-10])


def test_dump_lines_keeps_entries_only():
    text = "NXST_FLOW reply (xid=0x4):\n a=1\n  b=2 \nOTHER header:\n c=3\n\n"
    assert agent.dump_lines(text) == ["a=1", "b=2", "c=3"]
    assert agent.dump_lines("") == []


def test_streamed_command_output_becomes_a_blob():
    import io
    out = io.BytesIO()
    writer = agent.FrameWriter(out)
    ok = agent.run_streamed([sys.executable, "-c", "print('x' * 3000000)"], writer)
    bad = agent.run_streamed([sys.executable, "-c", "import sys; sys.exit('nope')"], writer)
    slow = agent.run_streamed([sys.executable, "-c", "import time; time.sleep(30)"], writer,
                              timeout=0.5)
    writer.frame("D", 0, b"{}")
    writer.close()
    _, blobs = agent.read_frames(out.getvalue())
    assert ok["error"] is None and blobs[ok["blob"]] == "x" * 3000000 + "\n"
    assert bad["rc"] == 1 and bad["error"] == "nope"
    assert slow["rc"] == -1 and "timed out" in slow["error"]


def test_column_decoders_agree_with_the_generic_decoder():
    uuid = {"type": "uuid", "refTable": "X"}
    table = {"columns": {
        "name": {"type": "string"},
        "opt": {"type": {"key": "string", "min": 0, "max": 1}},
        "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
        "ids": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
        "ref": {"type": {"key": uuid}},
        "optref": {"type": {"key": uuid, "min": 0, "max": 1}},
        "refs": {"type": {"key": uuid, "min": 0, "max": "unlimited"}},
        "refmap": {"type": {"key": "integer", "value": uuid, "min": 0, "max": "unlimited"}},
    }}
    multi = agent.multi_valued_columns({"tables": {"T": table}})["T"]
    decoders = agent.column_decoders(table)
    cells = {
        "name": ["a"], "opt": ["x", ["set", []]], "tags": ["one", ["set", ["a", "b"]],
                                                           ["set", []]],
        "ids": [["map", [["k", "v"]]], ["map", []]], "ref": [["uuid", "u1"]],
        "optref": [["uuid", "u1"], ["set", []]],
        "refs": [["uuid", "u1"], ["set", [["uuid", "u1"], ["uuid", "u2"]]], ["set", []]],
        "refmap": [["map", [[1, ["uuid", "u1"]]]]],
        "_uuid": [["uuid", "u0"]],
    }
    for col, values in cells.items():
        for value in values:
            assert decoders[col](value) == agent.ovsdb_decode(value, col in multi), (col, value)


@pytest.mark.parametrize("text", [
    "NXST_FLOW reply (xid=0x4):\n a=1\n  b=2 \nOTHER header:\n c=3\n\n",
    "NXST_FLOW reply:\n a=1\n b=\u00e9t\u00e9", " x", "", "header only\n",
])
def test_streamed_dumps_are_cut_like_whole_ones(text):
    for chunk in (1, 2, 5, 1000):
        doc = {"agent_version": agent.AGENT_VERSION,
               "bridges": {"br": {"flows": {"blob": 1}}}}
        got = read_agent_output(_framed(doc, [text], True, chunk))
        assert got["bridges"]["br"]["flows"] == agent.dump_lines(text), chunk


def test_the_agent_runs_on_python_3_6():
    """Nodes run the agent with their own python3 (RHEL 8: 3.6); vermin knows which
    APIs need what (it caught zip(strict=), 3.10+, which broke the agent there)."""
    import subprocess
    from pathlib import Path
    source = Path(agent.__file__)
    run = subprocess.run([str(Path(sys.executable).with_name("vermin")), "-t=3.6-", "--no-tips",
                          "--violations", str(source)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:]
