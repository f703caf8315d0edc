"""Collect a whole cluster into one Snapshot: every node in parallel, then the DBs.

Failures are data: a node that cannot be reached, or a command that fails on
it, becomes a ``Problem`` in the snapshot and the run goes on.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial

from ofrace.agents import ofrace_agent
from ofrace.collect import database_cache, secrets
from ofrace.collect.agent import AgentError, run_agent, transport_runner
from ofrace.collect.flow_cache import FlowCache
from ofrace.collect.inventory import DatabaseSpec, Inventory, NodeSpec
from ofrace.collect.node_document import OVSDB_ROWS, DocumentError, check_document
from ofrace.collect.transport import (
    DEFAULT_MAX_OUTPUT,
    DEFAULT_TIMEOUT,
    Budget,
    ExecTransport,
    LocalTransport,
    SSHTransport,
    TransportError,
)
from ofrace.errors import InputError
from ofrace.memory import building
from ofrace.snapshot import (
    Bridge,
    Chassis,
    CommandRecord,
    Database,
    Problem,
    Snapshot,
    Zone,
    check_rows,
)

# What ofrace reads from the OVN databases (whole tables, all columns).
SOUTHBOUND_TABLES = (
    "SB_Global", "Chassis", "Chassis_Private", "Encap", "Datapath_Binding", "Port_Binding",
    "Logical_Flow", "Logical_DP_Group", "Multicast_Group", "MAC_Binding", "Static_MAC_Binding",
    "Load_Balancer", "FDB", "Gateway_Chassis", "HA_Chassis", "HA_Chassis_Group", "Address_Set",
    "Port_Group", "DNS", "Meter", "Chassis_Template_Var", "IP_Multicast", "Controller_Event",
    # the DHCP options northd may use: ovn-trace parses put_dhcp(v6)_opts with them
    "DHCP_Options", "DHCPv6_Options",
    # load balancer health checks: the probes pinctrl sends (ofrace.ovn.service_monitor)
    "Service_Monitor",
)
NORTHBOUND_TABLES = (
    "NB_Global", "Logical_Switch", "Logical_Switch_Port", "Logical_Router",
    "Logical_Router_Port", "Logical_Router_Static_Route", "Logical_Router_Policy", "NAT",
    "ACL", "Load_Balancer", "Load_Balancer_Group", "Port_Group", "Address_Set",
    "Gateway_Chassis", "HA_Chassis_Group", "HA_Chassis", "DHCP_Options", "DNS", "QoS",
    "Meter", "Forwarding_Group", "Static_MAC_Binding", "BFD", "Copp", "Chassis_Template_Var",
    "Load_Balancer_Health_Check",
)

# The IC-SB (ovn-ic's OVN_IC_Southbound): what the audit checks remote ports against.
INTERCONNECT_TABLES = ("IC_SB_Global", "Availability_Zone", "Gateway", "Encap",
                       "Datapath_Binding", "Port_Binding", "Route")
DATABASE_NAMES = {"southbound": "OVN_Southbound", "northbound": "OVN_Northbound",
                  "interconnect": "OVN_IC_Southbound"}


@dataclass
class CollectEvent:
    """Progress: ``what`` is 'start', 'done', 'partial' (read, with problems), 'failed'
    or 'warning' for ``name``."""

    what: str
    name: str
    detail: str = ""


Progress = Callable[[CollectEvent], None]


# How long an SSH connection may take to open (at most; the node's deadline still counts).
SSH_CONNECT_TIMEOUT = 15.0
# A database read may take this long at least (a big SB is read in one query), and
# return at least DEFAULT_MAX_OUTPUT bytes, whatever the nodes' limits.
DATABASE_TIMEOUT = 600.0


@dataclass
class Limits:
    """What each node may cost, unless its inventory entry says otherwise."""

    timeout: float = DEFAULT_TIMEOUT
    max_output: int = DEFAULT_MAX_OUTPUT

    def for_node(self, spec: NodeSpec) -> tuple[float, int]:
        return (spec.timeout or self.timeout, spec.max_output or self.max_output)


def make_transport(spec: NodeSpec, strict_host_keys: bool = True, timeout: float | None = None):
    if spec.transport == "local":
        return LocalTransport(env=spec.env)
    if spec.transport == "exec":
        return ExecTransport(template=spec.template or "",
                             fields={"node": spec.name, "name": spec.name, **spec.fields},
                             env=spec.env)
    return SSHTransport(host=spec.host or spec.name, user=spec.user, port=spec.port,
                        identity=spec.identity, known_hosts=spec.known_hosts,
                        strict_host_keys=strict_host_keys,
                        timeout=min(SSH_CONNECT_TIMEOUT, timeout or SSH_CONNECT_TIMEOUT),
                        env=spec.env)


def chassis_from_agent(name: str, transport: str, doc: dict) -> Chassis:
    """Turn the agent's document into the snapshot model (DocumentError if it is not
    a node document: nothing a node sends is used before it is checked)."""
    check_document(doc)
    bridges = {}
    for br_name, br in doc.get("bridges", {}).items():
        bridges[br_name] = Bridge(name=br_name, flows=br.get("flows", []),
                                  groups=br.get("groups", []), meters=br.get("meters", []),
                                  tlv_map=br.get("tlv_map", ""),
                                  ports_desc=br.get("ports_desc", ""),
                                  fdb=br.get("fdb", ""),
                                  errors=br.get("errors", {}))
    return Chassis(
        name=name, transport=f"{transport} ({doc.get('mode', 'agent')})", reachable=True,
        hostname=doc.get("hostname"), system_id=doc.get("system_id"),
        integration_bridge=doc.get("integration_bridge") or "br-int",
        ovs_version=doc.get("ovs_version"), ovn_version=doc.get("ovn_version"),
        ovn_controller_status=doc.get("ovn_controller_status"), dpif=doc.get("dpif", ""),
        conntrack=doc.get("conntrack"), conntrack_truncated=doc.get("conntrack_truncated", False),
        bridges=bridges,
        ovsdb={t: rows for t, rows in doc.get("ovsdb", {}).items() if t in OVSDB_ROWS},
        commands=[CommandRecord(argv=c["argv"], rc=c["rc"], started=c["started"],
                                elapsed=c["elapsed"], error=c.get("error"))
                  for c in doc.get("commands", [])],
        problems=[Problem(where=name, what=e["what"], error=e["error"])
                  for e in doc.get("errors", [])],
        started=doc.get("started"), finished=doc.get("finished"))


def collect_node(spec: NodeSpec, transport, limits: Limits | None = None,
                 flow_cache: FlowCache | None = None) -> Chassis:
    """Read one node within its limits (its deadline starts now, not when it was
    queued); never raises for the node's own faults.  ``flow_cache``: the text of
    unchanged flow tables is taken from there (``ofrace.collect.flow_cache``)."""
    budget = Budget(*(limits or Limits()).for_node(spec))
    try:
        fresh: dict = {}
        if flow_cache is None:
            doc = run_agent(transport, budget=budget)
        else:
            known = flow_cache.known()
            flow_cache.preload(known)
            doc = run_agent(transport, {"flow_digests": known}, budget)
            settled = flow_cache.settle(doc)
            if settled is None:          # a kept file no longer fits: read it all again
                doc = run_agent(transport, {"flow_digests": {}}, budget)
                settled = flow_cache.settle(doc) or {}
            fresh = settled
        chassis = chassis_from_agent(spec.name, transport.describe(), doc)
        for name, (counters, layout, splits) in fresh.items():
            chassis.bridges[name].read_with(counters, layout, splits)
            if flow_cache is not None:
                flow_cache.watch(name, chassis.bridges[name])
        return chassis
    except TransportError as exc:
        error = str(exc)
    except (AgentError, DocumentError) as exc:
        error = f"{transport.describe()}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one node's answer must not cost the others
        error = (f"{transport.describe()}: its answer could not be read (a bug in ofrace: "
                 f"{type(exc).__name__}: {str(exc)[:200]})")
    return Chassis(name=spec.name, transport=transport.describe(), reachable=False,
                   problems=[Problem(where=spec.name, what="collect", error=error)])


def _ssl_args(spec: DatabaseSpec, chassis: Chassis | None) -> list[str]:
    """ovsdb-client SSL options: from the spec, else the node's own SSL table."""
    key, cert, ca = spec.private_key, spec.certificate, spec.ca_cert
    if chassis is not None and not (key and cert and ca):
        rows = chassis.ovsdb.get("SSL") or [{}]
        key = key or rows[0].get("private_key")
        cert = cert or rows[0].get("certificate")
        ca = ca or rows[0].get("ca_cert")
    args = []
    for flag, value in (("-p", key), ("-c", cert), ("-C", ca)):
        if value:
            args += [flag, value]
    return args


def _ssl_files(ssl_args: list[str]) -> tuple:
    """``_ssl_args``' files as ``ofrace_agent.ovsdb_connect`` takes them: (key, cert, CA)."""
    options = dict(zip(ssl_args[::2], ssl_args[1::2], strict=False))
    return options.get("-p"), options.get("-c"), options.get("-C")


def collect_database(name: str, tables: tuple[str, ...], spec: DatabaseSpec,
                     transports: dict, snapshot: Snapshot, limits: Limits | None = None,
                     local: LocalTransport | None = None) -> Database:
    """Read whole tables of one OVN database, locally or through a node; its secrets
    redacted (``snapshot.redacted`` says where)."""
    db, came = _read_database(name, tables, spec, transports, snapshot, limits, local)
    secrets.redact_database(db, snapshot.redacted, came)
    return db


def _read_database(name: str, tables: tuple[str, ...], spec: DatabaseSpec,
                   transports: dict, snapshot: Snapshot, limits: Limits | None,
                   local: LocalTransport | None) -> tuple[Database, dict | None]:
    """The database, and which of its rows may hold secrets (None: any)."""
    database = DATABASE_NAMES[name]
    chassis = snapshot.chassis.get(spec.via) if spec.via else None
    remote = spec.remote
    if remote is None and chassis is not None and name == "southbound":
        remote = chassis.external_ids.get("ovn-remote")
    db = Database(name=name, remote=remote or "?", via=spec.via or "local",
                  started=time.time())
    if remote is None:
        db.error = (f"no remote for the {name} database: give one, or read it via a node "
                    "whose ovn-remote is known")
        return db, None
    if spec.via and chassis is not None and not chassis.reachable:
        db.error = f"via node {spec.via} is unreachable"
        return db, None
    limits = limits or Limits()
    budget = Budget(max(DATABASE_TIMEOUT, limits.timeout),
                    max(DEFAULT_MAX_OUTPUT, limits.max_output))
    if spec.via:
        run = transport_runner(transports[spec.via], budget)
    else:
        run = transport_runner(local or LocalTransport(), budget)
    extra = _ssl_args(spec, chassis) if remote.startswith("ssl:") else []

    def check(found: dict) -> None:   # what a snapshot file must hold: see below
        check_rows(found, name, interconnect=name == "interconnect")

    monitored = _monitor_read(remote, spec.via, database, tables, extra,
                              transports.get(spec.via) if spec.via else None, budget, check)
    if monitored is not None:
        data, version, error = monitored.tables, monitored.schema.get("version"), None
        schema = monitored.schema
        db.read_as = monitored.read_as
        missing = [t for t in tables if t not in data]
        if missing:
            error = "tables not in this schema: " + ", ".join(missing)
    else:
        reader = ofrace_agent.Reader(run)
        schema = {}
        try:
            with building():
                data, version, error = ofrace_agent.ovsdb_select(
                    reader, remote, database, dict.fromkeys(tables), extra, schema)
        except TransportError as exc:
            data, version, error = None, None, str(exc)
        if data is not None:
            db.read_as = "full"
            data = {t: sorted(rows, key=_row_uuid) for t, rows in data.items()}
    db.finished = time.time()
    db.schema_version = version
    db.schema = schema or None
    if data is not None and not (monitored is not None and monitored.checked):
        try:  # what a snapshot file must hold, checked here so a bad DB cannot spoil the file
            check(data)
        except InputError as exc:
            data, error = None, f"unusable answer: {exc}"
    if data is not None:
        db.tables = data
        db.missing_tables = [t for t in tables if t not in data]
    if error and not (data is not None and error.startswith("tables not in this schema")):
        db.error = _explain_ovsdb_error(error, remote)
    return db, monitored.came if monitored is not None and data is db.tables else None


def database_reader(name: str, spec: DatabaseSpec, db: Database, open_transport,
                    snapshot: Snapshot, limits: Limits):
    """Later reads of a database already read (``db``): (read_where, read_whole), each
    one ``ovsdb-client query`` through a transport ``open_transport()`` opens (here, or
    the node it is read via); errors raise MissingDataError."""
    from ofrace.collect.southbound_on_demand import read_failed

    database = DATABASE_NAMES[name]
    chassis = snapshot.chassis.get(spec.via) if spec.via else None
    budget_args = (max(DATABASE_TIMEOUT, limits.timeout),
                   max(DEFAULT_MAX_OUTPUT, limits.max_output))
    extra = _ssl_args(spec, chassis) if db.remote.startswith("ssl:") else []

    def transact_here(ops: list[dict]) -> list | None:
        """The ops in one JSON-RPC ``transact`` from this process (no ovsdb-client to
        start, nor its re-printing of a big answer); None when that cannot be done
        here: ``query`` then runs ovsdb-client, which also words its errors."""
        if spec.via:
            return None
        try:
            sock = ofrace_agent.ovsdb_connect(db.remote, budget_args[0], _ssl_files(extra))
        except OSError:
            return None
        try:
            session = ofrace_agent.OvsdbSession(sock, time.time() + budget_args[0],
                                                budget_args[1])
            with building():
                return session.call("transact", [database, *ops])
        except (OSError, ValueError, ofrace_agent.OvsdbRpcError):
            return None
        finally:
            sock.close()

    def query(ops: list[dict]) -> list[dict]:
        replies = transact_here(ops)
        if replies is None:
            replies = query_via(ops)
        try:
            table = (db.schema or {}).get("tables", {})[ops[0]["table"]]
            decoders = ofrace_agent.column_decoders(table)
            rows = []
            for reply in replies:
                if "error" in reply:
                    raise ValueError(reply.get("details") or reply["error"])
                rows += ofrace_agent._decode_rows(reply, decoders)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise read_failed(ops[0]["table"], f"unreadable answer: {exc}") from None
        return rows

    def query_via(ops: list[dict]) -> list:
        """The ops through ``ovsdb-client query`` (here, or on the node read via)."""
        transport = open_transport()
        run = transport_runner(transport, Budget(*budget_args))
        argv = ["ovsdb-client", *extra, "query", db.remote,
                json.dumps([database, *ops], separators=(",", ":"))]
        try:
            with building():
                result = run(argv)
        except TransportError as exc:
            raise read_failed(ops[0]["table"], str(exc)) from None
        finally:
            _close_all([transport])
        if result["error"]:
            raise read_failed(ops[0]["table"], _explain_ovsdb_error(result["error"], db.remote))
        try:
            return json.loads(result["stdout"])
        except ValueError as exc:
            raise read_failed(ops[0]["table"], f"unreadable answer: {exc}") from None

    def read_matching(table: str, clauses: list[list]) -> list[dict] | None:
        """The UUIDs (and the clauses' columns) of the rows matching any clause, as
        monitors kept in the cache (``database_cache.read_matching``); None when that
        cannot be done here (an old server, a node without python3, any failure)."""
        columns = sorted({clause[0] for clause in clauses})
        transport = open_transport() if spec.via else None
        try:
            if transport is None:
                fetch_many = database_cache.local_fetch_many(
                    db.remote, database, table, _ssl_files(extra), *budget_args)
            else:
                fetch_many = database_cache.agent_fetch_many(transport, Budget(*budget_args), {
                    "remote": db.remote, "database": database, "table": table,
                    "ssl_files": _ssl_files(extra), "timeout": budget_args[0]})
            with building():
                return database_cache.read_matching(fetch_many, db.remote, spec.via or "local",
                                                    database, table, clauses, columns)
        except (OSError, ValueError, KeyError, TypeError, ofrace_agent.OvsdbRpcError,
                AgentError, TransportError):
            return None
        finally:
            if transport is not None:
                _close_all([transport])

    def read_where(table: str, clauses: list[list], columns: list[str] | None = None
                   ) -> list[dict]:
        if not clauses:
            return []
        if columns == ["_uuid"]:
            found = read_matching(table, clauses)
            if found is not None:
                return found
        ops = [{"op": "select", "table": table, "where": [clause]} for clause in clauses]
        for op in ops:
            if columns is not None:
                op["columns"] = columns
        return query(ops)

    def read_whole(table: str = "Logical_Flow") -> list[dict]:
        return query([{"op": "select", "table": table, "where": []}])

    return read_where, read_whole


def _row_uuid(row: dict) -> str:
    uuid = row.get("_uuid")
    return uuid if isinstance(uuid, str) else ""


def _monitor_read(remote: str, via: str | None, database: str, tables: tuple[str, ...],
                  ssl_args: list[str], transport, budget: Budget, check=None):
    """The database read with monitor_cond_since (and the cache), in this process or
    through the agent on ``via``; None when that cannot be done (an old server, a node
    without python3, any failure): the caller then reads with ovsdb-client, which
    also words the error as before."""
    ssl_files = _ssl_files(ssl_args)
    if via is None:
        def fetch(last_id):
            return ofrace_agent.ovsdb_monitor_read(remote, database, tables, last_id,
                                                   ssl_files, budget.timeout,
                                                   budget.max_output)
    else:
        fetch = database_cache.agent_fetch(transport, budget, {
            "remote": remote, "database": database, "tables": list(tables),
            "ssl_files": ssl_files, "timeout": budget.timeout})
    try:
        with building():
            return database_cache.read_database(fetch, remote, via or "local", database,
                                                tables, check=check)
    except (OSError, ValueError, KeyError, TypeError, ofrace_agent.OvsdbRpcError,
            AgentError, TransportError, InputError):   # AgentError: PythonMissing too
        return None


def _explain_ovsdb_error(error: str, remote: str) -> str:
    line = error.strip().splitlines()[-1] if error.strip() else error
    if re.search(r"ovsdb-client'?: (command )?not found|'ovsdb-client': No such file", line):
        return ("ovsdb-client not found where the database is read from "
                "(apt-get install openvswitch-common, or read it via a node)")
    return f"{remote}: {line}"


def collect_cluster(inventory: Inventory, *, strict_host_keys: bool = True, jobs: int = 16,
                    progress: Progress | None = None, limits: Limits | None = None) -> Snapshot:
    """Read every node and the databases in parallel.

    A database read from here starts with the nodes (a big SB takes as long as a
    big br-int); one read through a node waits for that node's own collection,
    which tells its ovn-remote and SSL files.  Each node has its own deadline and
    byte limit (``limits``, or its inventory entry's).  Ctrl-C ends every command
    still running, here and on the nodes, and is raised again at once.
    """
    progress = progress or (lambda event: None)
    limits = limits or Limits()
    snapshot = Snapshot()
    snapshot.problems.extend(inventory.problems)
    transports = {spec.name: make_transport(spec, strict_host_keys, limits.for_node(spec)[0])
                  for spec in inventory.nodes}
    local = LocalTransport()
    node_secrets = {spec.name: secrets.template_secrets(spec.template, spec.env)
                    for spec in inventory.nodes}
    for name, transport in transports.items():
        if isinstance(transport, SSHTransport):
            transport.on_unverified = partial(_accepted_unverified, progress, name)
    databases = [(name, tables, spec) for name, tables, spec in (
        ("southbound", SOUTHBOUND_TABLES, inventory.southbound),
        ("northbound", NORTHBOUND_TABLES, inventory.northbound),
        ("interconnect", INTERCONNECT_TABLES, inventory.interconnect)) if spec is not None]
    workers = max(1, min(jobs, len(inventory.nodes) + len(databases)))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {}
        for name, tables, spec in databases:
            if spec.via is None:
                progress(CollectEvent("start", name))
                futures[pool.submit(collect_database, name, tables, spec, transports,
                                    Snapshot(), limits, local)] = name
        for spec in inventory.nodes:
            progress(CollectEvent("start", spec.name))
            futures[pool.submit(collect_node, spec, transports[spec.name], limits)] = spec.name
        for future in as_completed(futures):
            result = future.result()
            if isinstance(result, Database):
                _database_done(snapshot, result, progress)
            else:
                _node_done(snapshot, result, progress, node_secrets.get(result.name, []))
        snapshot.chassis = dict(sorted(snapshot.chassis.items()))
        _collect_zones(inventory, snapshot, pool, transports, limits, progress)
        for name, tables, spec in databases:
            if spec.via is not None:
                progress(CollectEvent("start", name))
                _database_done(snapshot, collect_database(name, tables, spec, transports,
                                                          snapshot, limits, local), progress)
    except BaseException:
        # Ctrl-C (or a bug): end what runs now, so no thread keeps the process alive.
        pool.shutdown(wait=False, cancel_futures=True)
        _close_all([local, *transports.values()])
        raise
    pool.shutdown()
    _close_all([local, *transports.values()])
    return snapshot


def collect_on_demand(inventory: Inventory, *, strict_host_keys: bool = True, jobs: int = 16,
                      limits: Limits | None = None, warn: Callable[[str], None] | None = None,
                      entry_port: str | None = None, progress: Progress | None = None,
                      path_key: str | None = None) -> Snapshot:
    """The databases now, each node only when the command first asks for it (a live
    trace: the chassis where the packet enters, then each one it reaches).  A node read
    here is read as ``collect_cluster`` reads it; its problems are told through ``warn``
    when it is read; ``entry_port``: the logical port the packet enters by, whose node
    is read with the databases; ``path_key``: the request, whose nodes the last trace of
    it needed are read with them too (``path_cache``).  Inventories whose nodes carry
    their own zone databases are read whole (``collect_cluster``): which zone a port is
    in is only known from every zone."""
    if any(spec.southbound or spec.northbound for spec in inventory.nodes):
        return collect_cluster(inventory, strict_host_keys=strict_host_keys, jobs=jobs,
                               limits=limits)
    from ofrace.collect.on_demand import NodesOnDemand
    from ofrace.collect.path_cache import PathCache

    tell = warn or (lambda line: None)
    shown = progress or (lambda event: None)
    limits = limits or Limits()
    snapshot = Snapshot()
    snapshot.problems.extend(inventory.problems)
    specs = {spec.name: spec for spec in inventory.nodes}

    def transport_for(spec: NodeSpec):
        transport = make_transport(spec, strict_host_keys, limits.for_node(spec)[0])
        if isinstance(transport, SSHTransport):
            transport.on_unverified = partial(
                _accepted_unverified, lambda event: tell(f"{event.name}: {event.detail}"),
                spec.name)
        return transport

    def read_node(spec: NodeSpec) -> Chassis:
        transport = transport_for(spec)
        shown(CollectEvent("start", spec.name))
        flow_cache = FlowCache.for_node(spec.name, transport.describe())
        if flow_cache is not None:
            snapshot.chassis.flow_caches.append(flow_cache)
        try:
            chassis = collect_node(spec, transport, limits, flow_cache)
        finally:
            _close_all([transport])
        secrets.redact_chassis(chassis, secrets.template_secrets(spec.template, spec.env),
                               snapshot.redacted)
        if chassis.reachable:
            flows = sum(len(b.flows) for b in chassis.bridges.values())
            shown(CollectEvent("partial" if chassis.problems else "done", chassis.name,
                               f"{flows} flows, {len(chassis.bridges)} bridges"))
        for problem in chassis.problems:
            tell(f"{problem.where} {problem.what}: {problem.error}")
        return chassis

    snapshot.chassis = NodesOnDemand(inventory.nodes, read_node, jobs)  # type: ignore
    snapshot.chassis.paths = PathCache.for_request(inventory.nodes, path_key)
    if snapshot.chassis.paths is not None:
        snapshot.chassis.read_ahead(snapshot.chassis.paths.recall())
    at_once = tuple(t for t in SOUTHBOUND_TABLES if t != "Logical_Flow")
    databases = [(name, tables, spec) for name, tables, spec in (
        ("southbound", at_once, inventory.southbound),
        ("northbound", NORTHBOUND_TABLES, inventory.northbound),
        ("interconnect", INTERCONNECT_TABLES, inventory.interconnect)) if spec is not None]

    def read_database(name: str, tables: tuple[str, ...], spec: DatabaseSpec) -> Database:
        transports = {}
        if spec.via is not None and spec.via in specs:
            snapshot.chassis[spec.via]    # its ovn-remote and SSL files, and its reach
            transports[spec.via] = transport_for(specs[spec.via])
        shown(CollectEvent("start", name))
        try:
            db = collect_database(name, tables, spec, transports, snapshot, limits)
        finally:
            _close_all(transports.values())
        if not db.error:
            rows = sum(len(rows) for rows in db.tables.values())
            shown(CollectEvent("done", name, f"{rows} rows, {len(db.tables)} tables"))
        return db

    entry = None
    if entry_port and inventory.southbound is not None and inventory.southbound.via is None:
        # asked before the databases are read: a server busy sending them answers late
        entry = _entry_chassis(snapshot.chassis, inventory.southbound, entry_port, limits)
    with ThreadPoolExecutor(max_workers=len(databases) + 1) as pool:
        if entry is not None:
            # the node the packet enters is read while the databases are
            pool.submit(snapshot.chassis.find, entry)
        read = list(pool.map(lambda args: read_database(*args), databases))
        # the databases are in: their use starts while the entry node is still read
        for db in read:
            setattr(snapshot, db.name, db)
            if db.error:
                tell(f"{db.name} read: {db.error}")
        sb = snapshot.southbound
        if sb is not None and not sb.error and sb.schema:
            _logical_flows_on_demand(sb, inventory.southbound, specs, transport_for,
                                     snapshot, limits)
        if snapshot.southbound is not None:
            tables = snapshot.southbound.tables
            snapshot.chassis.hint_from_southbound(tables.get("Chassis", []),
                                                  tables.get("Encap", []))
            if snapshot.chassis.paths is not None and hasattr(tables, "prefetch"):
                tables.prefetch(*snapshot.chassis.paths.recall_logical())
    for problem in inventory.problems:
        tell(f"{problem.where} {problem.what}: {problem.error}")
    return snapshot


def _entry_chassis(nodes, spec: DatabaseSpec, port: str, limits: Limits) -> str | None:
    """The system-id of the chassis ``port`` is bound to, found with one small SB query
    (its binding, the chassis and their encaps, which hint ``nodes`` which node it is);
    None for a port the SB does not name so: the trace finds it."""
    ops = [{"op": "select", "table": "Port_Binding", "where": [["logical_port", "==", port]],
            "columns": ["chassis"]},
           {"op": "select", "table": "Chassis", "where": [],
            "columns": ["_uuid", "name", "hostname", "encaps"]},
           {"op": "select", "table": "Encap", "where": [], "columns": ["_uuid", "ip"]}]
    argv = ["ovsdb-client", *_ssl_args(spec, None), "query", spec.remote or "",
            json.dumps([DATABASE_NAMES["southbound"], *ops], separators=(",", ":"))]
    try:
        result = transport_runner(LocalTransport(), Budget(limits.timeout))(argv)
        replies = json.loads(result["stdout"]) if not result["error"] else None
        bound, chassis, encaps = (
            [{k: ofrace_agent.ovsdb_decode(v) for k, v in row.items()} for row in r["rows"]]
            for r in replies)
    except Exception:  # noqa: BLE001 - only a head start: the trace reads what it needs
        return None
    if len(bound) != 1 or not bound[0].get("chassis"):
        return None
    row = next((c for c in chassis if c.get("_uuid") == bound[0]["chassis"]), None)
    if row is None or not isinstance(row.get("name"), str):
        return None
    nodes.hint_from_southbound(chassis, encaps)
    return row["name"]


def _logical_flows_on_demand(sb: Database, spec: DatabaseSpec, specs: dict, transport_for,
                             snapshot: Snapshot, limits: Limits) -> None:
    """The SB's Logical_Flow, read by datapath when the trace is annotated."""
    from ofrace.collect.southbound_on_demand import SouthboundOnDemand

    def open_transport():
        return transport_for(specs[spec.via]) if spec.via else LocalTransport()

    def redact(rows: list[dict]) -> None:
        secrets.redact_more_rows({"Logical_Flow": rows}, sb.name, snapshot.redacted)

    read_where, read_whole = database_reader("southbound", spec, sb, open_transport,
                                             snapshot, limits)
    sb.tables = SouthboundOnDemand(sb.tables, read_where, read_whole, redact)  # type: ignore


def _collect_zones(inventory: Inventory, snapshot: Snapshot, pool: ThreadPoolExecutor,
                   transports: dict, limits: Limits, progress: Progress) -> None:
    """Each node's own zone NB and SB (interconnect mode: ovnkube-node has them on the
    node), read through the node's transport once the node is read.  The zone is named
    as its NB_Global.name says (ovn-kubernetes: the node's name), else after the node;
    nodes that name the same zone share it (its databases read once)."""
    futures = {}
    for spec in inventory.nodes:
        chassis = snapshot.chassis.get(spec.name)
        for name, tables, remote in (("southbound", SOUTHBOUND_TABLES, spec.southbound),
                                     ("northbound", NORTHBOUND_TABLES, spec.northbound)):
            if remote is None:
                continue
            if chassis is None or not chassis.reachable:
                db = Database(name=name, remote=remote, via=spec.name,
                              error=f"via node {spec.name} is unreachable")
                secrets.redact_database(db, snapshot.redacted)
                futures[pool.submit(lambda db=db: db)] = (spec.name, name)
                continue
            progress(CollectEvent("start", f"{spec.name} {name}"))
            futures[pool.submit(collect_database, name, tables,
                                DatabaseSpec(remote=remote, via=spec.name), transports,
                                snapshot, limits)] = (spec.name, name)
    found: dict[str, dict[str, Database]] = {}
    for future in as_completed(futures):
        node, which = futures[future]
        db = future.result()
        found.setdefault(node, {})[which] = db
        if db.error:
            progress(CollectEvent("failed", f"{node} {which}", db.error))
        else:
            rows = sum(len(rows) for rows in db.tables.values())
            progress(CollectEvent("done", f"{node} {which}",
                                  f"{rows} rows, {len(db.tables)} tables"))
    for node in sorted(found):
        dbs = found[node]
        nb = dbs.get("northbound")
        named = ((nb.tables.get("NB_Global") or [{}])[0].get("name") if nb else None)
        zone_name = named if isinstance(named, str) and named else node
        zone = snapshot.zones.get(zone_name)
        if zone is None:
            zone = snapshot.zones[zone_name] = Zone(name=zone_name, **dbs)
        zone.chassis.append(node)
    snapshot.zones = dict(sorted(snapshot.zones.items()))


def _close_all(transports) -> None:
    for transport in transports:
        try:
            transport.close()
        except Exception:  # noqa: BLE001 - closing is best effort; the others still close
            pass


def _accepted_unverified(progress: Progress, name: str, where: str, key: str) -> None:
    """--insecure-host-keys: say which host was not verified (known_hosts is not touched)."""
    progress(CollectEvent("warning", name, f"host key of {where} ({key}) accepted WITHOUT "
                          "verification (--insecure-host-keys); known_hosts was not changed"))


def _node_done(snapshot: Snapshot, chassis: Chassis, progress: Progress,
               node_secrets: list[str] | None = None) -> None:
    secrets.redact_chassis(chassis, node_secrets or [], snapshot.redacted)
    snapshot.chassis[chassis.name] = chassis
    if chassis.reachable:
        flows = sum(len(b.flows) for b in chassis.bridges.values())
        progress(CollectEvent("partial" if chassis.problems else "done", chassis.name,
                              f"{flows} flows, {len(chassis.bridges)} bridges"
                              + (f", {len(chassis.problems)} problems" if chassis.problems
                                 else "")))
    else:
        progress(CollectEvent("failed", chassis.name, chassis.problems[0].error))


def _database_done(snapshot: Snapshot, db: Database, progress: Progress) -> None:
    setattr(snapshot, db.name, db)
    if db.error:
        progress(CollectEvent("failed", db.name, db.error))
    else:
        rows = sum(len(rows) for rows in db.tables.values())
        progress(CollectEvent("done", db.name, f"{rows} rows, {len(db.tables)} tables"))
