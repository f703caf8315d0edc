"""The private SB's load plan: snapshot rows back in OVSDB's JSON notation (no daemon)."""

from __future__ import annotations

from ofrace.compare.private_ovsdb import load_plan, snapshot_schema
from ofrace.snapshot import Database

SCHEMA = {"name": "OVN_Southbound", "version": "1.0.0", "tables": {
    "Datapath_Binding": {"columns": {"tunnel_key": {"type": "integer"},
                                     "external_ids": {"type": {"key": "string",
                                                               "value": "string",
                                                               "min": 0, "max": "unlimited"}}},
                         "isRoot": True},
    "Logical_DP_Group": {"columns": {"datapaths": {"type": {
        "key": {"type": "uuid", "refTable": "Datapath_Binding", "refType": "weak"},
        "min": 0, "max": "unlimited"}}}},
    "Logical_Flow": {"columns": {
        "logical_datapath": {"type": {"key": {"type": "uuid", "refTable": "Datapath_Binding"},
                                      "min": 0, "max": 1}},
        "logical_dp_group": {"type": {"key": {"type": "uuid", "refTable": "Logical_DP_Group"},
                                      "min": 0, "max": 1}},
        "priority": {"type": {"key": {"type": "integer"}}},
        "tags": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
    }, "isRoot": True},
}}
DP1, DP2 = "11111111-0000-0000-0000-000000000001", "11111111-0000-0000-0000-000000000002"
GROUP, FLOW = "22222222-0000-0000-0000-000000000001", "33333333-0000-0000-0000-000000000001"
GONE = "44444444-0000-0000-0000-000000000001"


def _database() -> Database:
    return Database(name="southbound", remote="unix:x", tables={
        "Datapath_Binding": [{"_uuid": DP1, "_version": "v", "tunnel_key": 1,
                              "external_ids": {"name": "ls1"}}],
        "Logical_DP_Group": [{"_uuid": GROUP, "datapaths": [DP1, DP2]}],
        "Logical_Flow": [{"_uuid": FLOW, "logical_datapath": [], "logical_dp_group": GROUP,
                          "priority": 100, "tags": {}, "stale_column": "x"}],
        "Not_A_Table": [{"_uuid": GONE}],
    })


def test_rows_keep_their_uuids_and_cells_their_notation():
    plan = load_plan(_database(), SCHEMA)
    ops = {op["uuid"]: op for op in plan.operations}
    assert set(ops) == {DP1, GROUP, FLOW}
    assert ops[DP1] == {"op": "insert", "table": "Datapath_Binding", "uuid": DP1,
                        "row": {"tunnel_key": 1, "external_ids": ["map", [["name", "ls1"]]]}}
    flow = ops[FLOW]["row"]
    assert flow["logical_datapath"] == ["set", []]           # an empty optional reference
    assert flow["logical_dp_group"] == ["uuid", GROUP]
    assert flow["tags"] == ["map", []]
    assert "stale_column" not in flow


def test_references_to_rows_the_snapshot_lacks_are_left_out_and_said():
    plan = load_plan(_database(), SCHEMA)
    group = next(op for op in plan.operations if op["uuid"] == GROUP)
    assert group["row"]["datapaths"] == ["set", [["uuid", DP1]]]
    notes = " | ".join(plan.notes)
    assert "1 references to rows the snapshot does not hold" in notes
    assert "Not_A_Table" in notes and "Logical_Flow.stale_column" in notes


def test_the_snapshots_own_schema_is_preferred():
    db = _database()
    db.schema = SCHEMA
    assert snapshot_schema(db) == (SCHEMA, None)
    db.schema = None
    schema, note = snapshot_schema(db)
    assert "Logical_Flow" in schema["tables"] and "installed" in note
