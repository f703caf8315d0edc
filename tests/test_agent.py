"""The node agent's pure parts, on data recorded from the lab."""

import json
import sys

import pytest
from conftest import recorded

from ofrace.agents import ofrace_agent as agent
from ofrace.collect.agent import AgentError, agent_command, agent_source, read_agent_output


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


def test_agent_parses_as_the_oldest_python3_it_runs_on():
    """Nodes run it with their own python3 (3.6 or newer): no newer syntax."""
    import ast

    ast.parse(agent_source().decode(), feature_version=(3, 6))


def test_agent_ships_in_the_command_line():
    argv = agent_command({"compress": True})
    assert argv[:3] == ["python3", "-S", "-c"]     # no site-packages: stdlib only
    assert "zlib.decompress" in argv[3] and len(argv[3]) < 60_000
    assert argv[4] == '{"compress":true}'


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


@pytest.mark.parametrize("stream", [
    b"B 1 -5\nabc",                      # a negative length: used to loop forever
    b"D 0 -100\n{}",
    b"B 1 +5\nabcde", b"B 1 05\nabcde", b"B  1 5\nabcde", b"B 1 5 \nabcde", b"b 1 5\nabcde",
    b"X 1 5\nabcde", b"B 0 5\nabcde",    # blob ids count from 1
    b"D 1 2\n{}",                        # the document is frame 0
    b"B 1 1048577\n",                    # more than a chunk in one blob frame
    b"D 0 33554433\n",                   # more than a document may be
    b"B 1 99999999999\n",
    b"D 0 2\n{}D 0 2\n{}",               # two documents
    b"D 0 2\n{}B 1 1\nx",                # anything after the document
    b"B 1 1" + b"0" * 70,                # a header that never ends
    b"\xff\xfe 1 1\n",
])
def test_malformed_frames_are_errors_at_once(stream):
    for size in (1, 3, len(stream)):  # however the stream is cut
        reader = agent.FrameReader(agent.DumpLines)
        with pytest.raises(ValueError):
            for i in range(0, len(stream), size):
                reader.feed(stream[i:i + size])
            reader.document()


def test_frames_within_bounds_are_read():
    reader = agent.FrameReader(agent.DumpLines, max_document=10)
    reader.feed(b"B 7 0\nB 7 4\n ab")
    with pytest.raises(ValueError, match="over 10 bytes"):
        agent.FrameReader(agent.DumpLines, max_document=10).feed(b"D 0 11\n")
    reader.feed(b"\nD 0 2\n{}")
    assert reader.document() == {} and reader.blobs[7].finish() == ["ab"]


def test_a_document_nested_too_deeply_is_an_error():
    with pytest.raises(AgentError, match="nested too deeply"):
        read_agent_output(_raw_document(b"[" * 200_000))


def _raw_document(raw):
    import io
    out = io.BytesIO()
    writer = agent.FrameWriter(out, True)
    writer.frame("D", 0, raw)
    writer.close()
    return out.getvalue()


def test_long_lines_are_cut_in_linear_time():
    """A newline-free dump used to be re-joined at every piece (8 MiB: 16 s)."""
    import time
    lines = agent.DumpLines()
    piece = b"x" * 1024
    started = time.monotonic()
    lines.add(b" ")
    for _ in range(16 * 1024):           # 16 MiB in 1 KiB pieces, no newline
        lines.add(piece)
    assert lines.finish() == [" ".strip() + "x" * (16 << 20)]
    assert time.monotonic() - started < 5   # quadratic: minutes


def test_agent_stream_bounds_decompressed_bytes_and_lines():
    import zlib

    from ofrace.collect.agent import AgentStream
    from ofrace.collect.transport import LimitExceeded
    zipper = zlib.compressobj(9, zlib.DEFLATED, 31)
    frame = b"B 1 1048576\n" + b" " * (1 << 20)
    bomb = zipper.compress(frame * 64) + zipper.flush()   # 64 MiB in ~64 KB
    assert len(bomb) < 200_000
    with pytest.raises(LimitExceeded, match=r"exceeded 8388608 bytes \(uncompressed\)"):
        AgentStream(8 << 20).feed(bomb)
    # 3-byte lines cost far more than 3 bytes here: each counts LINE_COST more, so
    # 150k of them (450 KB on the wire, ~9 MB as Python strings) are over 8 MiB
    body = b" a\n" * 50_000
    frame = b"B 1 %d\n" % len(body) + body
    stream = AgentStream(8 << 20)
    stream.feed(frame)
    stream.feed(frame)
    with pytest.raises(LimitExceeded, match="exceeded 8388608 bytes"):
        stream.feed(frame)


def test_a_wrongly_typed_document_is_the_nodes_error():
    doc = {"agent_version": agent.AGENT_VERSION, "bridges": {"br-int": {"flows": 5}}}
    with pytest.raises(AgentError, match=r"document.bridges\['br-int'\].flows: expected"):
        read_agent_output(_framed(doc, [], True))
    ok = {"agent_version": agent.AGENT_VERSION, "bridges": {"br-int": {"flows": {"blob": 1}}}}
    assert read_agent_output(_framed(ok, [" a=1\n"], True))["bridges"]["br-int"]["flows"] == [
        "a=1"]


@pytest.mark.parametrize("topology", ["kind", "basic", "acl"])
def test_real_nodes_documents_pass_the_schema(topology):
    """The schema accepts what real nodes sent (the lab's recorded chassis), so it
    rejects only what no node would send."""
    from ofrace.collect.node_document import check_document
    snapshot, _ = recorded(topology)
    for chassis in snapshot.chassis.values():
        doc = {"agent_version": agent.AGENT_VERSION, "hostname": chassis.hostname,
               "ovsdb": chassis.ovsdb, "dpif": chassis.dpif, "errors": [],
               "bridges": {name: {"name": name, "flows": br.flows, "groups": br.groups,
                                  "meters": br.meters, "tlv_map": br.tlv_map,
                                  "ports_desc": br.ports_desc, "fdb": br.fdb,
                                  "errors": br.errors}
                           for name, br in chassis.bridges.items()},
               "commands": [{"argv": c.argv, "rc": c.rc, "started": c.started,
                             "elapsed": c.elapsed, "error": c.error} for c in chassis.commands]}
        check_document(doc)
        assert len(doc["ovsdb"]["Interface"]) > 3


@pytest.mark.parametrize("change, said", [
    ({"hostname": 5}, "document.hostname: expected a string or null, got an integer"),
    ({"ovsdb": {"Interface": [{"_uuid": "u", "name": "x", "ofport": "1"}]}},
     "document.ovsdb.Interface[0].ofport: expected an integer or a list, got a string"),
    ({"ovsdb": {"Interface": [{"_uuid": "u"}]}}, "Interface[0]: missing name"),
    ({"ovsdb": {"Port": [{"_uuid": "u", "name": "p", "x": [{}]}]}},
     "document.ovsdb.Port[0]['x'][0]: expected"),
    ({"bridges": {"b": {"flows": ["a", 1]}}}, "document.bridges['b'].flows[1]: expected a "
                                              "string"),
    ({"commands": [{"argv": ["x"], "rc": True, "started": 1, "elapsed": 1}]},
     "document.commands[0].rc: expected an integer, got true or false"),
])
def test_the_schema_names_the_first_wrong_place(change, said):
    from ofrace.collect.node_document import DocumentError, check_document
    doc = {"agent_version": agent.AGENT_VERSION, **change}
    with pytest.raises(DocumentError) as info:
        check_document(doc)
    assert said in str(info.value), str(info.value)
