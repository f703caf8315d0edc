"""ofrace node agent: read one chassis' OVS/OVN state in one round trip.

Runs on the node with the node's own ``python3`` (3.6 or newer, stdlib
only); the collector streams this file over its transport, so nothing is
installed on nodes.  It only *reads*: every command below is a dump, a list,
a version or an OVSDB ``query`` (which the server aborts, so it cannot
write).  The result is one JSON document on stdout, gzip-compressed when
asked, so a 200k-flow bridge crosses a slow link quickly.

The same module also runs on the collector's side when a node has no
``python3``: ``collect_node(run)`` takes the function that executes one
command, so the plan of what to read exists only here.
"""

import gzip
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

AGENT_VERSION = 1

# The OVS tables we keep, with the columns that matter for tracing and audits.
OVS_TABLES = {
    "Open_vSwitch": None,
    "Bridge": ["_uuid", "name", "ports", "datapath_type", "fail_mode", "protocols",
               "external_ids", "other_config", "datapath_id"],
    "Port": ["_uuid", "name", "interfaces", "tag", "trunks", "vlan_mode",
             "external_ids", "other_config"],
    "Interface": ["_uuid", "name", "type", "ofport", "ofport_request", "options",
                  "external_ids", "error", "admin_state", "link_state", "mac_in_use",
                  "status", "bfd_status"],
    "SSL": ["private_key", "certificate", "ca_cert"],
}

# One entry per thing read from a bridge: key, argv (the bridge name is
# appended), how the text is kept ("lines": one string per flow/group/meter line, "text": raw).
BRIDGE_READS = (
    ("flows", ["ovs-ofctl", "dump-flows", "--no-names"], "lines"),
    ("groups", ["ovs-ofctl", "-O", "OpenFlow15", "dump-groups", "--no-names"], "lines"),
    ("meters", ["ovs-ofctl", "-O", "OpenFlow15", "dump-meters"], "lines"),
    ("tlv_map", ["ovs-ofctl", "dump-tlv-map"], "text"),
    ("ports_desc", ["ovs-ofctl", "dump-ports-desc"], "text"),
    # The MAC table that NORMAL forwarding consults (read-only).
    ("fdb", ["ovs-appctl", "fdb/show"], "text"),
)


def _now():
    return time.time()


def run_local(argv, timeout=120):
    """Run one read-only command on this node; never raises."""
    started = _now()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return {"argv": argv, "rc": -1, "stdout": "", "started": started,
                    "elapsed": _now() - started,
                    "error": "timed out after %ss" % timeout}
    except OSError as exc:
        return {"argv": argv, "rc": 127, "stdout": "", "started": started,
                "elapsed": _now() - started, "error": str(exc)}
    result = {"argv": argv, "rc": proc.returncode,
              "stdout": out.decode("utf-8", "replace"), "started": started,
              "elapsed": _now() - started, "error": None}
    if proc.returncode != 0:
        result["error"] = (err.decode("utf-8", "replace").strip()
                           or "exit status %d" % proc.returncode)
    return result


class Reader(object):
    """Runs commands through ``run`` and keeps every command's outcome."""

    def __init__(self, run):
        self._run = run
        self.commands = []
        self._lock = threading.Lock()

    def run(self, argv):
        result = self._run(argv)
        record = dict(result)
        record.pop("stdout", None)
        with self._lock:
            self.commands.append(record)
        return result


def ovsdb_decode(value, multi=False):
    """Turn OVSDB JSON notation into plain data.

    ``multi`` marks a column whose schema allows several values: OVSDB sends
    a one-element set as the bare element, so only the schema can tell that
    the result must still be a list.
    """
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, body = value
        if kind == "set":
            return [ovsdb_decode(v) for v in body]
        if kind == "map":
            return dict((ovsdb_decode(k), ovsdb_decode(v)) for k, v in body)
        if kind in ("uuid", "named-uuid"):
            value = body
    return [value] if multi else value


def multi_valued_columns(schema):
    """{table: set(column)} for the columns that hold sets (not maps) in ``schema``."""
    result = {}
    for table, spec in schema.get("tables", {}).items():
        cols = set()
        for col, cspec in spec.get("columns", {}).items():
            ctype = cspec.get("type")
            if isinstance(ctype, dict) and "value" not in ctype:
                if ctype.get("max", 1) != 1:
                    cols.add(col)
        result[table] = cols
    return result


def ovsdb_select(reader, remote, database, tables, extra_args=()):
    """Read whole tables with one ``ovsdb-client query`` (read-only by design).

    Returns ``(data, schema_version, error)``.
    """
    base = ["ovsdb-client"] + list(extra_args)
    schema_argv = base + ["get-schema"] + ([remote] if remote else []) + [database]
    result = reader.run(schema_argv)
    if result["error"]:
        return None, None, result["error"]
    try:
        schema = json.loads(result["stdout"])
    except ValueError as exc:
        return None, None, "unreadable schema from ovsdb-client: %s" % exc
    multi = multi_valued_columns(schema)
    names = [name for name in tables if name in schema.get("tables", {})]
    missing = [name for name in tables if name not in names]
    ops = [database]
    for name in names:
        op = {"op": "select", "table": name, "where": []}
        if tables[name]:
            op["columns"] = [c for c in tables[name]
                             if c == "_uuid" or c in schema["tables"][name]["columns"]]
        ops.append(op)
    argv = base + ["query"] + ([remote] if remote else [])
    argv.append(json.dumps(ops, separators=(",", ":")))
    result = reader.run(argv)
    if result["error"]:
        return None, schema.get("version"), result["error"]
    try:
        replies = json.loads(result["stdout"])
    except ValueError as exc:
        return None, schema.get("version"), "unreadable ovsdb-client output: %s" % exc
    data = {}
    for name, reply in zip(names, replies, strict=False):
        if "error" in reply:
            return data, schema.get("version"), "%s: %s" % (
                name, reply.get("details") or reply["error"])
        cols = multi.get(name, set())
        data[name] = [dict((col, ovsdb_decode(val, col in cols)) for col, val in row.items())
                      for row in reply.get("rows", [])]
    error = ("tables not in this schema: %s" % ", ".join(missing)) if missing else None
    return data, schema.get("version"), error


def _bridge_jobs(name):
    return dict(((name, key), argv + [name]) for key, argv, _ in BRIDGE_READS)


def _bridge_doc(name, results):
    bridge = {"name": name, "errors": {}}
    for key, _, keep in BRIDGE_READS:
        result = results[(name, key)]
        if result["error"]:
            bridge["errors"][key] = result["error"]
            bridge[key] = [] if keep == "lines" else ""
        elif keep == "lines":
            # Drop the reply header ("NXST_FLOW reply (xid=0x4):"); keep entries.
            bridge[key] = [ln.strip() for ln in result["stdout"].splitlines()
                           if ln.startswith(" ") and ln.strip()]
        else:
            bridge[key] = result["stdout"]
    return bridge


def run_all(reader, jobs, workers=8):
    """Run independent read-only commands at once: a node answers in the time of the
    slowest one (the big dump-flows), not of their sum."""
    results = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = dict((pool.submit(reader.run, argv), key) for key, argv in jobs.items())
        for future in futures:
            results[futures[future]] = future.result()
    finally:
        pool.shutdown()
    return results


def related_bridges(ovsdb, integration_bridge):
    """br-int and every bridge reachable from it through patch ports."""
    by_uuid = dict((row["_uuid"], row) for row in ovsdb.get("Interface", []))
    port_ifaces = dict((row["_uuid"], row.get("interfaces", [])) for row in ovsdb.get("Port", []))
    bridge_of_iface = {}
    for br in ovsdb.get("Bridge", []):
        for port in br.get("ports", []):
            for iface in port_ifaces.get(port, []):
                if iface in by_uuid:
                    bridge_of_iface[by_uuid[iface]["name"]] = br["name"]
    wanted = [integration_bridge]
    seen = set(wanted)
    while wanted:
        current = wanted.pop()
        for iface in by_uuid.values():
            if bridge_of_iface.get(iface["name"]) != current or iface.get("type") != "patch":
                continue
            peer = (iface.get("options") or {}).get("peer")
            peer_bridge = bridge_of_iface.get(peer)
            if peer_bridge and peer_bridge not in seen:
                seen.add(peer_bridge)
                wanted.append(peer_bridge)
    known = set(br["name"] for br in ovsdb.get("Bridge", []))
    return sorted(b for b in seen if b in known)


def _first_line(result):
    if result["error"]:
        return None
    lines = result["stdout"].strip().splitlines()
    return lines[0].strip() if lines else None


def collect_node(run, options=None):
    """Read everything ofrace needs from one node, through ``run``."""
    options = options or {}
    reader = Reader(run)
    started = _now()
    doc = {"agent_version": AGENT_VERSION, "started": started, "errors": [],
           "hostname": None, "bridges": {}}
    # br-int is read at once, with everything else; the OVSDB rows then say whether it
    # is really the integration bridge and which bridges are patched to it.
    guess = options.get("integration_bridge") or "br-int"
    jobs = {"hostname": ["hostname"], "vswitchd": ["ovs-vswitchd", "--version"],
            "controller": ["ovn-controller", "--version"],
            # OpenFlow port -> datapath port, to read ofproto/trace's datapath actions.
            "dpif": ["ovs-appctl", "dpif/show"],
            "status": ["ovn-appctl", "-t", "ovn-controller", "connection-status"]}
    jobs.update(_bridge_jobs(guess))
    pool = ThreadPoolExecutor(max_workers=1)
    ovsdb_future = pool.submit(ovsdb_select, reader, options.get("ovs_remote"), "Open_vSwitch",
                               OVS_TABLES)
    results = run_all(reader, jobs)
    ovsdb, _, error = ovsdb_future.result()
    pool.shutdown()
    doc["hostname"] = _first_line(results["hostname"])
    doc["ovsdb"] = ovsdb or {}
    if error:
        doc["errors"].append({"what": "local OVSDB", "error": error})
    ovs_row = (doc["ovsdb"].get("Open_vSwitch") or [{}])[0]
    ext = ovs_row.get("external_ids") or {}
    integration_bridge = options.get("integration_bridge") or ext.get("ovn-bridge") or "br-int"
    doc["integration_bridge"] = integration_bridge
    doc["system_id"] = ext.get("system-id")
    vswitchd = _first_line(results["vswitchd"])
    # Open_vSwitch.ovs_version is filled in by distribution start scripts only.
    doc["ovs_version"] = ovs_row.get("ovs_version") or (vswitchd.split()[-1] if vswitchd
                                                         else None)
    doc["ovn_version"] = _first_line(results["controller"])

    bridges = options.get("bridges") or related_bridges(doc["ovsdb"], integration_bridge)
    more = {}
    for name in bridges:
        if name != guess:
            more.update(_bridge_jobs(name))
    results.update(run_all(reader, more))
    for name in bridges:
        doc["bridges"][name] = _bridge_doc(name, results)
        for key, error in sorted(doc["bridges"][name]["errors"].items()):
            doc["errors"].append({"what": "%s %s" % (name, key), "error": error})

    dpif = results["dpif"]
    doc["dpif"] = dpif["stdout"] if not dpif["error"] else ""
    if dpif["error"]:
        doc["errors"].append({"what": "dpif/show", "error": dpif["error"]})
    doc["ovn_controller_status"] = _first_line(results["status"])
    doc["finished"] = _now()
    doc["commands"] = reader.commands
    return doc


def main(argv):
    options = json.loads(argv[1]) if len(argv) > 1 else {}
    doc = collect_node(run_local, options)
    payload = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    out = getattr(sys.stdout, "buffer", sys.stdout)
    if options.get("compress"):
        payload = gzip.compress(payload, 1)
    out.write(payload)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
