"""The node agent's pure parts, on data recorded from the lab."""

from conftest import recorded
from ofrace.agents import ofrace_agent as agent

from ofrace.collect.agent import agent_command


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
