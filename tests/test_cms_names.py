"""The names users know (Neutron's, ovn-kubernetes'), from the NB's external_ids: taken by
--from/--to and microflows, shown beside OVN's names; a name of several ports is a one-line
error listing them.  Snapshots: the recorded acl and kind labs, with the external_ids
Neutron ML2/OVN and ovn-kubernetes write (neutron/common/ovn/constants.py; ovn-kubernetes'
pod ports) added where northd would have them (the NB row, and its SB copy)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.cli import main
from ofrace.errors import Exit, InputError
from ofrace.ovn.cms_names import CmsNames
from ofrace.snapshot import Snapshot

NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"


def _row(snapshot: Snapshot, db: str, table: str, name: str, key: str = "name") -> dict:
    tables = (snapshot.northbound if db == "nb" else snapshot.southbound).tables
    return next(r for r in tables[table] if r.get(key) == name)


def _port_ids(snapshot: Snapshot, port: str, ids: dict) -> None:
    """Set a port's external_ids as the CMS does (NB) and northd copies them (SB)."""
    for row in (_row(snapshot, "nb", "Logical_Switch_Port", port),
                _row(snapshot, "sb", "Port_Binding", port, "logical_port")):
        row["external_ids"] = dict(row.get("external_ids") or {}, **ids)


def neutron_acl() -> Snapshot:
    """The acl lab as Neutron would name it: ports, a network, a router, a security group."""
    snap = Snapshot.load(FIXTURES / "acl" / "snapshot.ofr")
    for port, name, vm in (("vm1", "web-1-port", "1111"), ("vm5", "client-port", "5555"),
                           ("vm2", "twin", "2222"), ("vm3", "twin", "3333")):
        _port_ids(snap, port, {"neutron:port_name": name, "neutron:device_id": vm,
                               "neutron:device_owner": "compute:nova"})
    for ls in snap.northbound.tables["Logical_Switch"]:
        ls["external_ids"] = {"neutron:network_name": f"net-{ls['name']}"}
    lr = snap.northbound.tables["Logical_Router"][0]
    lr["external_ids"] = {"neutron:router_name": "edge"}
    for lrp in snap.northbound.tables["Logical_Router_Port"]:   # ids as Neutron writes them
        lrp["external_ids"] = {"neutron:router_name": "r-uuid",
                               "neutron:network_name": lrp["name"].split("-")[1]}
    pg = _row(snap, "nb", "Port_Group", "pg_clients")
    pg["external_ids"] = {"neutron:security_group_id": "5a1e-clients"}
    for acl in snap.northbound.tables["ACL"]:
        acl["external_ids"] = {"neutron:security_group_rule_id": f"rule-{acl['priority']}"}
    return snap


def test_names_read_from_the_nb():
    names = CmsNames.from_databases(neutron_acl().northbound.tables, {})
    assert names.ports["vm1"].name == "web-1-port"
    assert names.ports["vm1"].label == 'Neutron port "web-1-port"'
    assert names.ports["vm1"].detailed == ('Neutron port "web-1-port", device id 1111, '
                                           'device owner compute:nova')
    assert names.port_candidates("twin") == ["vm2", "vm3"]
    assert names.ports["lr1-ls1"].label == \
        "Neutron router interface (router r-uuid, network net-ls1)"
    assert {n.kind for n in names.datapaths.values()} == {"network", "router"}
    assert names.port_groups["pg_clients"].as_json() == {
        "cms": "neutron", "kind": "security group", "name": "", "id": "5a1e-clients"}
    # negative control: the recorded lab, as recorded, has no CMS names at all
    plain = Snapshot.load(FIXTURES / "acl" / "snapshot.ofr")
    bare = CmsNames.from_databases(plain.northbound.tables, plain.southbound.tables)
    assert not bare.ports and not bare.datapaths and not bare.port_groups


def test_sb_copy_is_enough_without_the_nb():
    snap = neutron_acl()
    names = CmsNames.from_databases({}, snap.southbound.tables)
    assert names.ports["vm5"].name == "client-port"


def test_from_by_neutron_name_traces_as_the_ovn_name():
    snap = neutron_acl()
    by_ovn = run_trace(snap, TraceRequest(source="vm5", destination="10.0.1.11:23"))
    by_name = run_trace(neutron_acl(), TraceRequest(source="client-port",
                                                    destination="10.0.1.11:23"))
    assert by_name.start.logical_port == "vm5"
    assert by_name.start.packet == by_ovn.start.packet
    assert [v.text for v in by_name.annotated.verdicts] == [v.text for v in
                                                              by_ovn.annotated.verdicts]
    assert by_name.request["ports"] == {"client-port": "vm5"}
    # ovn-trace only knows OVN's names: the microflow it gets says vm5
    assert 'inport == "vm5"' in by_name.microflow


def test_to_by_neutron_name_takes_the_ports_address():
    result = run_trace(neutron_acl(), TraceRequest(source="client-port",
                                                   destination="web-1-port:23"))
    assert result.start.packet["nw_dst"] == 0x0A00010B   # vm1's 10.0.1.11 in its binding
    with pytest.raises(InputError, match="not an IP address"):
        run_trace(neutron_acl(), TraceRequest(source="client-port", destination="nowhere:23"))


def test_microflow_inport_by_neutron_name():
    expr = ('inport == "client-port" && eth.src == 50:54:00:00:02:11 && '
            'eth.dst == 50:54:00:00:02:01 && ip4.src == 10.0.2.11 && ip4.dst == 10.0.1.11 && '
            'ip.ttl == 64 && tcp.src == 40000 && tcp.dst == 23 && tcp.flags == 2')
    result = run_trace(neutron_acl(), TraceRequest(expression=expr))
    assert result.start.logical_port == "vm5"
    assert result.microflow == expr.replace('"client-port"', '"vm5"')
    # an outport by its CMS name goes to ovn-trace by OVN's; an OVN name stays as it is
    both = expr + ' && outport == "web-1-port"'
    result = run_trace(neutron_acl(), TraceRequest(expression=both))
    assert result.request["ports"] == {"client-port": "vm5", "web-1-port": "vm1"}
    assert result.microflow == expr.replace('"client-port"', '"vm5"') + ' && outport == "vm1"'
    plain = expr.replace('"client-port"', '"vm5"')
    assert run_trace(neutron_acl(), TraceRequest(expression=plain)).microflow == plain


def test_ambiguous_name_lists_the_candidates():
    with pytest.raises(InputError) as err:
        run_trace(neutron_acl(), TraceRequest(source="twin", destination="10.0.1.11:80"))
    text = str(err.value)
    assert "\n" not in text
    assert "2 logical ports" in text and "vm2 (" in text and "vm3 (" in text


def test_unknown_name_suggests_ovn_and_cms_names():
    with pytest.raises(InputError, match=r"unknown logical port 'client-prot'.*'client-port'"):
        run_trace(neutron_acl(), TraceRequest(source="client-prot", destination="10.0.1.1"))


def test_names_shown_beside_ovn_names_in_json_and_text(tmp_path):
    path = tmp_path / "neutron.ofr"
    neutron_acl().save(path)
    run = CliRunner().invoke(main, ["trace", "--snapshot", str(path), "--from",
                                    "client-port", "--to", "web-1-port:80", "--json"])
    doc = json.loads(run.stdout)
    assert doc["trace"]["cms"]["name"] == "client-port"
    flows = [e for e in doc["trace"]["events"] if e["kind"] == "flow" and e["cms"]]
    assert any(e["cms"].get("datapath", {}).get("kind") == "network" for e in flows)
    assert any(e["cms"].get("inport", {}).get("name") == "client-port" for e in flows)
    # the security group and its rule beside the ACL that matched
    assert any("security group" in nb and "rule-" in nb for e in flows for nb in e["northbound"])
    delivered = [v for v in doc["verdicts"] if v["kind"] == "delivered"]
    assert delivered and delivered[0]["cms"]["name"] == "web-1-port"
    text = CliRunner().invoke(main, ["trace", "--snapshot", str(path), "--from",
                                     "client-port", "--to", "web-1-port:80"]).stdout
    assert 'delivered to vm1 [Neutron port "web-1-port"' in text
    assert 'lr1 [Neutron router "edge"] ingress (inport lr1-ls2 [Neutron router interface' in text
    assert '[Neutron network "net-' in text


def test_pods_by_namespace_and_name():
    snap = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    _port_ids(snap, NGINX, {"namespace": "default", "pod": "true"})
    for name in ("default/nginx-deployment-9456bbbf9-x6pc6", "nginx-deployment-9456bbbf9-x6pc6"):
        result = run_trace(snap, TraceRequest(source=name, destination="10.244.2.5:53",
                                              protocol="udp"))
        assert result.start.logical_port == NGINX
    assert result.annotated.root.cms.label == "pod \"default/nginx-deployment-9456bbbf9-x6pc6\""
    # a bare pod name two namespaces share names both: listed, not guessed
    names = CmsNames.from_databases({"Logical_Switch_Port": [
        {"name": "a_web", "external_ids": {"namespace": "a", "pod": "true"}},
        {"name": "b_web", "external_ids": {"namespace": "b", "pod": "true"}}]}, {})
    known = {"a_web": {}, "b_web": {}}
    assert names.resolve_port("b/web", known) == "b_web"
    with pytest.raises(InputError, match=r"'web' names 2 logical ports: a_web \(pod "
                                         r"\"a/web\"\); b_web"):
        names.resolve_port("web", known)
    # negative control: a namespace that is not the port's prefix names no pod
    snap = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    _port_ids(snap, NGINX, {"namespace": "other", "pod": "true"})
    with pytest.raises(InputError, match="unknown logical port"):
        run_trace(snap, TraceRequest(source="other/nginx-deployment-9456bbbf9-x6pc6",
                                     destination="10.244.2.5:53"))


def test_service_name_beside_its_load_balancer():
    snap = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    names = CmsNames.from_databases(snap.northbound.tables, snap.southbound.tables)
    owners = {lb.get("name"): (lb.get("external_ids") or {}).get("k8s.ovn.org/owner")
              for lb in snap.northbound.tables["Load_Balancer"]}
    assert names.load_balancers
    for lb, name in names.load_balancers.items():
        assert name.kind == "service" and name.name == owners[lb]


def test_reply_after_a_request_not_delivered_shows_the_forward_trace(tmp_path):
    """--reply after a rejected request: the forward trace, the reply marked as not run
    (and why), exit 1 — not an input error with nothing shown."""
    path = tmp_path / "acl.ofr"
    Snapshot.load(FIXTURES / "acl" / "snapshot.ofr").save(path)
    args = ["trace", "--snapshot", str(path), "--from", "vm5", "--to", "10.0.1.11:23", "--reply"]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == Exit.FOUND, text.output
    assert "to ovn-controller on hv1: reject" in text.stdout
    assert "Reply: not traced: the request was not delivered anywhere to answer from" \
        in text.stdout
    as_json = CliRunner().invoke(main, args + ["--json"])
    assert as_json.exit_code == Exit.FOUND
    doc = json.loads(as_json.stdout)
    assert [v["kind"] for v in doc["verdicts"]] == ["controller"]
    assert doc["reply"]["run"] is False and "not delivered" in doc["reply"]["why"]
    # negative control: a delivered request's reply runs
    ok = json.loads(CliRunner().invoke(main, ["trace", "--snapshot", str(path), "--from",
                                              "vm5", "--to", "10.0.1.11:80", "--reply",
                                              "--json"]).stdout)
    assert ok["reply"]["run"] is True and ok["reply"]["verdicts"]


def test_recorded_lab_with_neutron_names_set_by_ovn_nbctl():
    """tests/fixtures/localport: sw0-port1 got neutron:port_name=web-1 and sw0
    neutron:network_name=private through ovn-nbctl, then was collected."""
    snap = Snapshot.load(FIXTURES / "localport" / "snapshot.ofr")
    result = run_trace(snap, TraceRequest(source="web-1", destination="10.0.0.2:80"))
    assert result.start.logical_port == "sw0-port1"
    assert [v.kind for v in result.annotated.verdicts] == ["delivered"]
    flows = [e for e in result.annotated.root.events if e.cms.get("datapath")]
    assert flows and flows[0].cms["datapath"].label == 'Neutron network "private"'
    # northd's copy in the SB says the same (Datapath_Binding name2, Port_Binding ids)
    assert CmsNames.from_databases({}, snap.southbound.tables).ports["sw0-port1"].name \
        == "web-1"


def test_floating_ip_named_beside_its_nat():
    from ofrace.ovn.southbound import NorthboundObject
    row = {"type": "dnat_and_snat", "logical_ip": "192.0.2.5", "external_ip": "198.51.100.5",
           "external_ids": {"neutron:fip_id": "f1"}}
    assert NorthboundObject("NAT", row).describe(CmsNames()).endswith(
        "[Neutron floating IP f1]")
    assert "[" not in NorthboundObject("NAT", dict(row, external_ids={})).describe(CmsNames())
