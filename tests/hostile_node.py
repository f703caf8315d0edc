"""A fake node for the hostile-node tests: ``hostile_node.py CASE NAME ARGV...``.

An ``exec:`` template (or an SSH forced command) runs this instead of a real node.
ARGV (under sshd, ``$SSH_ORIGINAL_COMMAND``) is what ofrace asked the node to run:
the agent, or one command when the node has no python3.  CASE says how to answer:
correctly (``healthy``) or in one of the broken or hostile ways the tests name.
Stdlib only; it prints, it never reads.
"""

import gzip
import json
import os
import select
import shlex
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ofrace.agents import ofrace_agent  # noqa: E402

FLOWS = [f" cookie=0x0, duration=1s, table=0, n_packets=0, n_bytes=0, priority={100 + i},ip,"
         f"nw_dst=10.0.0.{i} actions=drop" for i in range(50)]

SB_SCHEMA = {"name": "OVN_Southbound", "version": "20.33.0", "tables": {
    "Chassis": {"columns": {"name": {"type": "string"}, "hostname": {"type": "string"}}},
    "SB_Global": {"columns": {"nb_cfg": {"type": "integer"}}}}}
NB_SCHEMA = {"name": "OVN_Northbound", "version": "7.3.0", "tables": {
    "Logical_Switch": {"columns": {"name": {"type": "string"}}}}}
OVS_SCHEMA = {"name": "Open_vSwitch", "version": "8.5.0", "tables": {
    "Open_vSwitch": {"columns": {"external_ids": {"type": {
        "key": "string", "value": "string", "min": 0, "max": "unlimited"}}}},
    "Bridge": {"columns": {"name": {"type": "string"}}}}}


def out(data):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def frames(doc, blobs=(), compress=True, raw_doc=None):
    """A well-formed agent answer carrying ``doc`` (or the bytes ``raw_doc``); each blob
    is a text or a list of texts (one frame each)."""

    class Sink:
        def __init__(self):
            self.parts = []

        def write(self, data):
            self.parts.append(data)

        def flush(self):
            pass

    sink = Sink()
    writer = ofrace_agent.FrameWriter(sink, compress)
    for texts in blobs:
        blob = writer.new_blob()
        for text in [texts] if isinstance(texts, str) else texts:
            writer.frame("B", blob, text.encode())
    writer.frame("D", 0, raw_doc if raw_doc is not None else json.dumps(doc).encode())
    writer.close()
    return b"".join(sink.parts)


def healthy_doc(name):
    return {"agent_version": ofrace_agent.AGENT_VERSION, "hostname": name, "errors": [],
            "started": time.time(), "finished": time.time(), "system_id": name + "-id",
            "integration_bridge": "br-int", "ovs_version": "3.1.0", "dpif": "",
            "ovn_version": "ovn-controller 23.03.0", "ovn_controller_status": "connected",
            "bridges": {"br-int": {"name": "br-int", "flows": {"blob": 1}, "groups": [],
                                   "meters": [], "tlv_map": "", "ports_desc": "", "fdb": "",
                                   "errors": {}}},
            "ovsdb": {"Open_vSwitch": [{"_uuid": "u0", "external_ids": {
                "ovn-remote": "tcp:127.0.0.1:6642", "system-id": name + "-id"}}]},
            "commands": [{"argv": ["ovs-ofctl", "dump-flows", "br-int"], "rc": 0,
                          "started": 1.0, "elapsed": 0.1, "error": None}]}


def healthy(name):
    out(frames(healthy_doc(name), ["NXST_FLOW reply (xid=0x4):\n" + "\n".join(FLOWS) + "\n"]))


def ovsdb_client(argv):
    """Canned ``ovsdb-client`` answers: the healthy node is also the way to the DBs."""
    database = argv[-1] if argv[1] == "get-schema" else json.loads(argv[-1])[0]
    schema = {"OVN_Southbound": SB_SCHEMA, "OVN_Northbound": NB_SCHEMA}.get(database,
                                                                           OVS_SCHEMA)
    if argv[1] == "get-schema":
        out(json.dumps(schema).encode())
        return
    replies = []
    for op in json.loads(argv[-1])[1:]:
        uuid = ["uuid", "6c1a3c1e-0000-4000-8000-00000000000%d"]
        rows = {"Chassis": [{"_uuid": [uuid[0], uuid[1] % 1], "name": "healthy-id",
                             "hostname": "healthy"}],
                "Logical_Switch": [{"_uuid": [uuid[0], uuid[1] % 2], "name": "sw0"}],
                "Open_vSwitch": [{"_uuid": [uuid[0], uuid[1] % 3],
                                  "external_ids": ["map", []]}],
                }.get(op["table"], [])
        replies.append({"rows": rows})
    out(json.dumps(replies).encode())


def flood(frame_size, total, compress, line=None):
    """Valid blob frames, ``total`` bytes of flow lines (or until killed)."""
    zipper = zlib.compressobj(1, zlib.DEFLATED, 31) if compress else None
    line = line or (b" cookie=0x1, table=0, priority=1,ip actions=drop" + b"x" * 200 + b"\n")
    chunk = line * (frame_size // len(line))
    sent = 0
    while sent < total:
        data = b"B 1 %d\n" % len(chunk) + chunk
        out(zipper.compress(data) if zipper else data)
        sent += len(chunk)


def gzip_bomb():
    """A few MB on the wire that would be gigabytes once decompressed."""
    zipper = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b" " * (1 << 20)
    for _ in range(4096):  # 4 GiB of valid frames, ~4 MB compressed
        out(zipper.compress(b"B 1 %d\n" % len(zeros) + zeros))
    out(zipper.flush())


def trickle(every=0.2):
    """A valid frame whose bytes come one at a time, forever (well, for 1 MiB)."""
    out(b"B 1 1048576\n")
    while True:
        out(b" ")
        time.sleep(every)


def silent():
    """Say nothing for an hour -- unless nobody reads our stdout any more: sshd does
    not end a command without a terminal when its client disconnects."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), 0)  # POLLERR / POLLHUP: the reader is gone
    for _ in range(36000):
        if poller.poll(100):
            return


def bad_document(raw):
    out(frames(None, ["NXST_FLOW reply:\n" + "\n".join(FLOWS) + "\n"], raw_doc=raw))


def with_doc(**changes):
    doc = healthy_doc("bad")
    doc.update(changes)
    return json.dumps(doc).encode()


def bridge(**changes):
    br = dict(healthy_doc("bad")["bridges"]["br-int"])
    br.update(changes)
    return with_doc(bridges={"br-int": br})


DOCUMENTS = {
    "doc-list": b"[]",
    "doc-bridges-list": json.dumps({"agent_version": 2, "bridges": []}).encode(),
    "doc-bridge-string": with_doc(bridges={"br-int": "x"}),
    "doc-empty-command": with_doc(commands=[{}]),
    "doc-error-number": with_doc(errors=[{"what": 1}]),
    "doc-flows-number": bridge(flows=5),
    "doc-top-flows": json.dumps({"agent_version": 2, "flows": 5, "bridges": {
        "br-int": {"flows": 5}}}).encode(),
    "doc-deep": b"[" * 200000,
    "doc-external-ids-string": with_doc(ovsdb={"Open_vSwitch": [{"_uuid": "u",
                                                                 "external_ids": "x"}]}),
    "doc-wrong-version": with_doc(agent_version=99),
}


def agentless(case, argv):
    """No python3 on this node: the collector runs each command through us."""
    if argv[:1] == ["python3"]:
        sys.stderr.write("sh: 1: python3: not found\n")
        sys.exit(127)
    if argv[0] == "ovsdb-client" and argv[1] == "get-schema":
        out(json.dumps(OVS_SCHEMA).encode())
    elif argv[0] == "ovsdb-client":
        out(json.dumps([{"rows": 5}, {"rows": []}]).encode()
            if case == "agentless-rows" else b"[" * 200000)
    elif argv[0] == "hostname":
        out(b"agentless\n")
    else:
        out(b"")


def main(argv):
    case, name, command = argv[1], argv[2], argv[3:]
    if not command:  # an SSH forced command: what the client asked for is in the env
        command = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    if command and command[0] == "env":  # ``env K=V cmd...``, as a transport sends it
        command = command[1 + sum(1 for a in command[1:] if "=" in a):]
    if case.startswith("agentless"):
        return agentless(case, command)
    if command[:1] == ["ovsdb-client"]:
        return ovsdb_client(command)
    if case == "healthy":
        healthy(name)
    elif case == "hang-plain":
        out(b"B 1 -5\nabc")
    elif case == "hang-gzip":
        out(gzip.compress(b"D 0 -100\n{}"))
    elif case == "huge-frame":
        out(b"D 0 1073741824\n")
        flood(1 << 20, 1 << 30, False)
    elif case == "flood":
        flood(1 << 20, 1 << 30, True)
    elif case == "flood-plain":
        flood(1 << 20, 1 << 30, False)
    elif case == "short-lines":  # the most lines per byte: what costs memory here
        flood(1 << 20, 1 << 30, True, b" ab\n")
    elif case == "gzip-bomb":
        gzip_bomb()
    elif case == "no-newline":
        blob = " " + "x" * (8 << 20)  # one 8 MiB line, arriving in 1 MiB frames
        doc = healthy_doc("no-newline")
        out(frames(doc, [[blob[i:i + (1 << 20)] for i in range(0, len(blob), 1 << 20)]]))
    elif case == "trickle":
        trickle()
    elif case == "silent":
        silent()
    elif case == "stderr-flood":  # megabytes of one stderr line, then a failure
        sys.stderr.write("e" * (8 << 20) + "\n")
        sys.exit(1)
    elif case == "lingering-child":
        # a process that keeps our stdout open after we exit: the deadline still ends it
        if os.fork() == 0:
            time.sleep(3600)
        sys.exit(0)
    elif case == "doc-amplify":  # ~30 MiB of 2-character strings in one OVSDB cell
        doc = with_doc(ovsdb={"Port": [{"_uuid": "u", "name": "p", "x": "CELL"}]})
        prefix, suffix = doc.split(b'"CELL"')
        piece, count = b'"ab", ' * (1 << 17), 40     # streamed: this fake stays small
        size = len(prefix) + len(piece) * count + len(b'"ab"]') + 1 + len(suffix)
        out(b"D 0 %d\n" % size + prefix + b"[")
        for _ in range(count):
            out(piece)
        out(b'"ab"]' + suffix)
    elif case in DOCUMENTS:
        bad_document(DOCUMENTS[case])
    else:
        sys.exit(f"hostile_node.py: unknown case {case!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
