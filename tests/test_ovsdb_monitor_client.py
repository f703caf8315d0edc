"""The agent's OVSDB JSON-RPC client against a scripted server on a unix socket: echo
answered, messages cut anywhere, an old server's "unknown method" told apart."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from ofrace.agents import ofrace_agent

SCHEMA = {"name": "T", "version": "1.0.0", "tables": {"Thing": {"columns": {
    "name": {"type": "string"}}}}}


def serve(path, answer):
    """Accept one connection; for each request, send what ``answer(request)`` gives
    (a list of messages), one byte at a time; record what the client sent."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    seen = []

    def run():
        conn, _ = listener.accept()
        decoder, buffer = json.JSONDecoder(), ""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data.decode()
                while buffer.strip():
                    try:
                        message, end = decoder.raw_decode(buffer.lstrip())
                    except ValueError:
                        break
                    buffer = buffer.lstrip()[end:]
                    seen.append(message)
                    for reply in answer(message):
                        for byte in json.dumps(reply).encode():
                            conn.sendall(bytes([byte]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return seen, thread, listener


def modern(message):
    method, ident = message.get("method"), message.get("id")
    if method == "get_schema":
        return [{"method": "echo", "params": ["x"], "id": "echo"},
                {"id": ident, "result": SCHEMA, "error": None}]
    if method == "transact":
        return [{"id": ident, "result": [{"rows": [{"model": "clustered", "cid": [
            "uuid", "c0000000-0000-0000-0000-000000000000"]}]}], "error": None}]
    if method == "monitor_cond_since":
        return [{"id": ident, "error": None, "result": [
            False, "d0000000-0000-0000-0000-000000000000",
            {"Thing": {"e0000000-0000-0000-0000-000000000000": {"initial": {"name": "a}b"}}}}]}]
    return []


def old_server(message):
    if message.get("method") == "monitor_cond_since":
        return [{"id": message["id"], "result": None,
                 "error": {"error": "unknown method"}}]
    return modern(message)


def test_monitor_read_answers_echo_and_reads_messages_cut_anywhere(tmp_path):
    path = tmp_path / "db.sock"
    seen, thread, listener = serve(path, modern)
    answer = ofrace_agent.ovsdb_monitor_read(f"unix:{path}", "T", ["Thing", "Absent"],
                                             timeout=30)
    listener.close()
    assert answer["found"] is False and answer["server"]["model"] == "clustered"
    assert answer["server"]["cid"] == "c0000000-0000-0000-0000-000000000000"
    rows = ofrace_agent.decode_monitor_updates(answer["schema"], answer["updates"])
    assert rows["Thing"]["e0000000-0000-0000-0000-000000000000"][1]["name"] == "a}b"
    assert {"result": ["x"], "error": None, "id": "echo"} in seen
    request = [m for m in seen if m.get("method") == "monitor_cond_since"][0]
    assert request["params"][1:] == ["ofrace", {"Thing": [{"columns": ["name", "_version"]}]},
                                     ofrace_agent.ZERO_UUID]


def test_monitors_of_a_condition_share_one_session_each_with_its_own_id(tmp_path):
    path = tmp_path / "db.sock"
    seen, _, listener = serve(path, modern)
    where = [["name", "==", "a"]]
    answer = ofrace_agent.ovsdb_monitor_where(
        f"unix:{path}", "T", "Thing",
        [{"where": where, "columns": ["name"], "last_id": None},
         {"where": [["name", "==", "b"]], "columns": ["name"],
          "last_id": "d0000000-0000-0000-0000-000000000000"}], timeout=30)
    listener.close()
    assert len(answer["monitors"]) == 2 and answer["monitors"][0]["found"] is False
    asked = [m["params"] for m in seen if m.get("method") == "monitor_cond_since"]
    assert [a[1] for a in asked] == ["ofrace-0", "ofrace-1"]     # distinct monitor ids
    assert asked[0][2:] == [{"Thing": [{"columns": ["name"], "where": where}]},
                            ofrace_agent.ZERO_UUID]
    assert asked[1][3] == "d0000000-0000-0000-0000-000000000000"
    assert sum(m.get("method") == "get_schema" for m in seen) == 1
    rows = ofrace_agent.decode_monitor_updates(answer["schema"],
                                               answer["monitors"][0]["updates"], ["name"])
    assert rows["Thing"]["e0000000-0000-0000-0000-000000000000"][1] == {
        "_uuid": "e0000000-0000-0000-0000-000000000000", "name": "a}b"}


def test_a_condition_on_a_table_the_schema_lacks_is_an_error(tmp_path):
    path = tmp_path / "db.sock"
    _, _, listener = serve(path, modern)
    with pytest.raises(ValueError, match="no table Absent"):
        ofrace_agent.ovsdb_monitor_where(f"unix:{path}", "T", "Absent", [
            {"where": [], "columns": ["name"], "last_id": None}], timeout=30)
    listener.close()


def test_old_server_is_told_apart(tmp_path):
    path = tmp_path / "db.sock"
    _, _, listener = serve(path, old_server)
    with pytest.raises(ofrace_agent.OvsdbRpcError) as caught:
        ofrace_agent.ovsdb_monitor_read(f"unix:{path}", "T", ["Thing"], timeout=30)
    listener.close()
    assert caught.value.unsupported


def test_reply_over_the_byte_limit_is_an_error(tmp_path):
    path = tmp_path / "db.sock"
    _, _, listener = serve(path, modern)
    with pytest.raises(OSError, match="over 100 bytes"):
        ofrace_agent.ovsdb_monitor_read(f"unix:{path}", "T", ["Thing"], timeout=30,
                                        max_bytes=100)
    listener.close()


def test_no_server_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        ofrace_agent.ovsdb_monitor_read(f"unix:{tmp_path}/none.sock", "T", ["Thing"],
                                        timeout=5)


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.1:6642", ("10.0.0.1", 6642)), ("10.0.0.1", ("10.0.0.1", 6640)),
    ("[fd00::1]:6641", ("fd00::1", 6641)), ("[fd00::1]", ("fd00::1", 6640)),
    ("fd00::1", ("fd00::1", 6640)),
])
def test_host_and_port(text, expected):
    assert ofrace_agent._host_port(text) == expected


def test_agent_mode_reports_errors_in_its_document(tmp_path):
    class Writer:
        def new_blob(self):
            raise AssertionError("no blob for an error")

    doc = ofrace_agent.monitor_document({"remote": f"unix:{tmp_path}/none.sock",
                                         "database": "T", "tables": ["Thing"], "timeout": 5},
                                        Writer())
    assert doc["error"] and not doc.get("monitor")
