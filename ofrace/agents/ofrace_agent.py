"""ofrace node agent: read one chassis' OVS/OVN state in one round trip.

Runs on the node with the node's own ``python3`` (3.6 or newer, stdlib
only); the collector streams this file over its transport, so nothing is
installed on nodes.  It only *reads*: every command below is a dump, a list,
a version or an OVSDB ``query`` (which the server aborts, so it cannot
write).  Its stdout is a stream of frames (``FrameWriter``), gzip-compressed
when asked: the flow dump goes out chunk by chunk while ``ovs-ofctl`` is
still printing it, so a 200k-flow bridge costs little more than the dump
itself; the JSON document that says what everything is comes last.

The same module also runs on the collector's side when a node has no
``python3``: ``collect_node(run)`` takes the function that executes one
command, so the plan of what to read exists only here.
"""

import base64
import codecs
import hashlib
import json
import os
import re
import select
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

AGENT_VERSION = 2

# The OVS tables we keep, with the columns that matter for tracing and audits.
OVS_TABLES = {
    "Open_vSwitch": None,
    "Bridge": ["_uuid", "name", "ports", "datapath_type", "fail_mode", "protocols",
               "external_ids", "other_config", "datapath_id"],
    "Port": ["_uuid", "name", "interfaces", "tag", "trunks", "vlan_mode",
             "external_ids", "other_config"],
    "Interface": ["_uuid", "name", "type", "ofport", "ofport_request", "options",
                  "external_ids", "error", "admin_state", "link_state", "mac_in_use",
                  "status", "bfd", "bfd_status", "cfm_mpid", "cfm_fault",
                  "cfm_remote_opstate"],
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

# The datapath's connection table, verbose (per-direction TCP states), read-only.  A busy
# node holds hundreds of thousands of connections: the dump is cut (at a line) past
# MAX_CONNTRACK_BYTES (~70k entries of ~230 bytes) and the document says so.  It travels
# inside the JSON document, so it must leave room there (MAX_DOCUMENT, below).
CONNTRACK_READ = ["ovs-appctl", "dpctl/dump-conntrack", "-m"]
MAX_CONNTRACK_BYTES = 16 << 20


def _now():
    return time.time()


def _result(argv, started, rc, stderr=b"", **extra):
    """What running one command gave: exit status, error (stderr's text, or a reason)."""
    result = {"argv": argv, "rc": rc, "stdout": "", "started": started,
              "elapsed": _now() - started, "error": None}
    result.update(extra)
    if rc != 0:
        result["error"] = stderr.decode("utf-8", "replace").strip() or "exit status %d" % rc
    return result


def run_local(argv, timeout=120):
    """Run one read-only command on this node; never raises."""
    if argv == CONNTRACK_READ:
        return run_bounded(argv, MAX_CONNTRACK_BYTES, timeout)
    started = _now()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return _result(argv, started, -1, ("timed out after %ss" % timeout).encode())
    except OSError as exc:
        return _result(argv, started, 127, str(exc).encode())
    return _result(argv, started, proc.returncode, err, stdout=out.decode("utf-8", "replace"))


def _pump(argv, timeout, on_chunk):
    """Run ``argv``, handing each piece of its stdout to ``on_chunk`` until that returns
    False (the command is then killed) or ``timeout`` kills it.  Gives (exit status,
    stderr bytes, stopped, timed out); OSError if it cannot start."""
    killed = []
    errors = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
    except OSError:
        errors.close()
        raise

    def kill():
        killed.append(True)
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    stopped = False
    try:
        fd = proc.stdout.fileno()
        while True:
            chunk = os.read(fd, MAX_CHUNK)
            if not chunk:
                break
            if on_chunk(chunk) is False:
                stopped = True
                proc.kill()
                break
        rc = proc.wait()
    finally:
        timer.cancel()
        proc.stdout.close()
    errors.seek(0)
    err = errors.read()
    errors.close()
    return rc, err, stopped, bool(killed)


def run_bounded(argv, limit, timeout=120):
    """Like ``run_local``, but stops reading past ``limit`` bytes of output (the command
    is killed; ``truncated`` says so), so a huge dump costs this node bounded memory."""
    started = _now()
    chunks, size = [], [0]

    def take(chunk):
        chunks.append(chunk)
        size[0] += len(chunk)
        return size[0] <= limit

    try:
        rc, err, truncated, timed_out = _pump(argv, timeout, take)
    except OSError as exc:
        return _result(argv, started, 127, str(exc).encode())
    if timed_out:
        return _result(argv, started, -1, ("timed out after %ss" % timeout).encode())
    out = b"".join(chunks).decode("utf-8", "replace")
    if truncated:
        return _result(argv, started, 0, stdout=out, truncated=True)
    return _result(argv, started, rc, err, stdout=out)


def conntrack_doc(result):
    """``(text, truncated, error)`` of the connection-table read: the text cut at the
    last whole line within MAX_CONNTRACK_BYTES (a collector-side run may bring more)."""
    if result["error"]:
        return None, False, result["error"]
    text = result["stdout"]
    truncated = bool(result.get("truncated")) or len(text) > MAX_CONNTRACK_BYTES
    if truncated:
        text = text[:MAX_CONNTRACK_BYTES]
        text = text[:text.rfind("\n") + 1]
    return text, truncated, None


class FrameWriter(object):
    """The agent's stdout: ``<kind> <id> <length>\\n<bytes>`` frames, compressed as
    they are written.

    ``B`` frames carry chunks of a command's output (a blob), in order;
    the one ``D`` frame, last, carries the JSON document, which names
    blobs by id.  Threads write whole frames under a lock.
    """

    def __init__(self, out, compress=False):
        self._out = out
        self._zip = zlib.compressobj(1, zlib.DEFLATED, 31) if compress else None
        self._lock = threading.Lock()
        self._blobs = 0

    def new_blob(self):
        with self._lock:
            self._blobs += 1
            return self._blobs

    def frame(self, kind, ident, data):
        head = ("%s %d %d\n" % (kind, ident, len(data))).encode("ascii")
        with self._lock:
            for part in (head, data):
                self._out.write(self._zip.compress(part) if self._zip else part)

    def close(self):
        with self._lock:
            if self._zip:
                self._out.write(self._zip.flush())
            self._out.flush()


# A frame header, exactly as ``FrameWriter`` writes it: blob ids count from 1, the
# document is frame 0.  Anything else is a broken (or hostile) stream.
_HEADER = re.compile(br"(B|D) (0|[1-9][0-9]{0,8}) (0|[1-9][0-9]{0,9})\Z")
MAX_CHUNK = 1 << 20          # the most one ``B`` frame carries (``run_streamed`` reads this much)
MAX_DOCUMENT = 32 << 20      # the most the ``D`` frame may carry (a 1,000-port node: ~2 MB)
MAX_BLOBS = 4096             # blobs in one answer (two per bridge are streamed)


class FrameReader(object):
    """Reads ``FrameWriter`` output (un-gzipped) fed in pieces of any size.

    Each blob's bytes go, in order, to its own ``sink()`` object (anything
    with ``add(bytes)``), kept in ``blobs``; ``document()`` is the JSON
    document once everything is in.  Every header is checked (kind, ids,
    lengths within bounds, one document, last), so a broken or hostile
    stream is a ValueError, never a loop or an unbounded buffer.
    """

    def __init__(self, sink, max_document=MAX_DOCUMENT):
        self._sink = sink
        self._max_document = max_document
        self.blobs = {}
        self._head = b""      # a frame header still arriving
        self._frame = None    # (kind, blob id, bytes still to come)
        self._doc = bytearray()
        self._done = False    # the document frame is complete: nothing may follow

    def _header(self, line):
        match = _HEADER.match(line)
        if match is None:
            raise ValueError("bad frame header %r" % line[:40])
        kind, ident, length = match.group(1), int(match.group(2)), int(match.group(3))
        if self._done:
            raise ValueError("data after the document frame")
        if kind == b"B":
            if ident == 0 or length > MAX_CHUNK:
                raise ValueError("bad blob frame %r" % line)
            if ident not in self.blobs and len(self.blobs) >= MAX_BLOBS:
                raise ValueError("more than %d blobs" % MAX_BLOBS)
        elif ident != 0 or len(self._doc) + length > self._max_document:
            raise ValueError("document frame %r is over %d bytes or misnumbered"
                             % (line, self._max_document))
        return kind, ident, length

    def feed(self, data):
        data = memoryview(data)
        while len(data):
            if self._frame is None:
                eol = bytes(data[:65]).find(b"\n")
                if eol < 0:
                    self._head += bytes(data[:65])
                    if len(self._head) > 64:
                        raise ValueError("bad frame header %r" % self._head[:40])
                    return
                line, data = self._head + bytes(data[:eol]), data[eol + 1:]
                self._head = b""
                self._frame = self._header(line)
            kind, ident, left = self._frame
            piece, data = data[:left], data[left:]
            if kind == b"B":
                blob = self.blobs.get(ident)
                if blob is None:
                    blob = self.blobs[ident] = self._sink()
                blob.add(bytes(piece))
            else:
                self._doc += piece
            left -= len(piece)
            self._frame = (kind, ident, left) if left else None
            if kind == b"D" and not left:
                self._done = True

    def document(self):
        if self._frame is not None or self._head:
            raise ValueError("truncated frame")
        if not self._done:
            raise ValueError("no document frame")
        try:
            return json.loads(bytes(self._doc).decode("utf-8"))
        except RecursionError:
            raise ValueError("the document is nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise ValueError("the document is not UTF-8: %s" % exc) from None


class _Chunks(list):
    add = list.append


def read_frames(payload):
    """``FrameWriter`` output (un-gzipped), whole → ``(doc, {blob id: text})``."""
    reader = FrameReader(_Chunks)
    reader.feed(payload)
    doc = reader.document()
    return doc, dict((k, b"".join(v).decode("utf-8", "replace"))
                     for k, v in reader.blobs.items())


def run_streamed(argv, writer, timeout=120):
    """Like ``run_local``, but stdout goes to ``writer`` as one blob while the
    command runs; the result names the blob instead of holding the text."""
    started = _now()
    blob = writer.new_blob()
    try:
        rc, err, _, timed_out = _pump(argv, timeout,
                                      lambda chunk: writer.frame("B", blob, chunk))
    except OSError as exc:
        return _result(argv, started, 127, str(exc).encode())
    if timed_out:
        return _result(argv, started, -1, ("timed out after %ss" % timeout).encode(), blob=blob)
    return _result(argv, started, rc, err, blob=blob)


class DumpLines(object):
    """The entries of an ``ovs-ofctl`` dump (its indented lines, stripped), cut
    as the dump arrives in pieces of any size (bytes to ``add``, text to
    ``add_text``); ``finish()`` gives them all.  A line still arriving is kept
    as its pieces, so a long line costs time in proportion to its length."""

    def __init__(self):
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._tail = []
        self.lines = []

    def add(self, data):
        self.add_text(self._decode(data))

    def add_text(self, text):
        if "\n" not in text:
            if text:
                self._tail.append(text)
            return
        self._tail.append(text)
        parts = "".join(self._tail).split("\n")
        last = parts.pop()
        self._tail = [last] if last else []
        self.lines += [s for s in (p.strip() for p in parts if p[:1] == " ") if s]

    def finish(self):
        self.add_text(self._decode(b"", True) + "\n")
        return self.lines


def dump_lines(text):
    """The entries of a whole ``ovs-ofctl`` dump."""
    lines = DumpLines()
    lines.add_text(text)
    return lines.finish()


class Reader(object):
    """Runs commands through ``run`` and keeps every command's outcome."""

    def __init__(self, run, stream=None):
        self._run = run
        self._stream = stream or run
        self.commands = []
        self._lock = threading.Lock()

    def run(self, argv):
        return self._record(self._run(argv))

    def stream(self, argv):
        """Run a command whose output may be big (``stream`` may send it on as it comes)."""
        return self._record(self._stream(argv))

    def record(self, result):
        """Keep the outcome of a read made another way than by a command."""
        return self._record(result)

    def _record(self, result):
        record = dict(result)
        for key in ("stdout", "blob", "unchanged", "flow_tables"):
            record.pop(key, None)
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


def _is_uuid_type(base):
    return isinstance(base, dict) and base.get("type") == "uuid" or base == "uuid"


def column_decoders(table_schema):
    """{column: decode} for one table: a decoder chosen once from the column's
    type, giving what ``ovsdb_decode`` gives, without walking every cell's
    notation generically (the SB's Logical_Flow is 100k+ rows)."""
    decoders = {"_uuid": ovsdb_decode, "_version": ovsdb_decode}
    for col, cspec in table_schema.get("columns", {}).items():
        ctype = cspec.get("type")
        if not isinstance(ctype, dict):
            ctype = {"key": ctype}
        key, value = ctype.get("key"), ctype.get("value")
        multi = ctype.get("max", 1) != 1
        if value is not None:
            plain = not _is_uuid_type(key) and not _is_uuid_type(value)
            decoders[col] = _decode_plain_map if plain else ovsdb_decode
        elif _is_uuid_type(key):
            decoders[col] = _decode_set if multi else ovsdb_decode
        else:
            decoders[col] = _decode_plain_set if multi else _decode_plain_scalar
    return decoders


def _decode_plain_map(value):
    return dict(value[1])


def _decode_plain_set(value):
    return value[1] if isinstance(value, list) else [value]


def _decode_plain_scalar(value):
    return value[1] if isinstance(value, list) else value


def _decode_set(value):
    return ovsdb_decode(value, True)


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


def _json(text, what):
    """``(value, error)`` for the JSON a command printed."""
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, "unreadable %s: %s" % (what, exc)
    except RecursionError:
        return None, "unreadable %s: nested too deeply" % what


def _schema_problem(schema):
    """What is wrong with an OVSDB schema's shape, or None (the decoders rely on it)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("tables"), dict):
        return "not an OVSDB schema"
    for name, spec in schema["tables"].items():
        columns = spec.get("columns") if isinstance(spec, dict) else None
        if not isinstance(columns, dict) or not all(isinstance(c, dict)
                                                    for c in columns.values()):
            return "table %r of the schema has no proper columns" % name
    return None


def _decode_rows(reply, decoders):
    """A reply's rows, decoded; ValueError if the reply is not rows of cells."""
    rows = reply.get("rows", [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("rows are not a list of objects")
    try:
        return [dict((col, decoders.get(col, ovsdb_decode)(val)) for col, val in row.items())
                for row in rows]
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, RecursionError):
        raise ValueError("a cell does not have its column's type") from None


def ovsdb_select(reader, remote, database, tables, extra_args=(), schema_out=None):
    """Read whole tables with one ``ovsdb-client query`` (read-only by design).

    Returns ``(data, schema_version, error)``; output that is not what
    ovsdb-client prints is an error, not an exception.  ``schema_out`` (a dict)
    receives the schema the server served, so a copy of the database can be
    rebuilt with exactly its columns (``trace --check-logical``).
    """
    base = ["ovsdb-client"] + list(extra_args)
    schema_argv = base + ["get-schema"] + ([remote] if remote else []) + [database]
    result = reader.run(schema_argv)
    if result["error"]:
        return None, None, result["error"]
    schema, error = _json(result["stdout"], "schema from ovsdb-client")
    error = error or _schema_problem(schema)
    if error:
        return None, None, error if error.startswith("unreadable") else (
            "unreadable schema from ovsdb-client: %s" % error)
    version = schema.get("version") if isinstance(schema.get("version"), str) else None
    if schema_out is not None:
        schema_out.update(schema)
    names = [name for name in tables if name in schema["tables"]]
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
        return None, version, result["error"]
    replies, error = _json(result["stdout"], "ovsdb-client output")
    if error is None and (not isinstance(replies, list)
                          or not all(isinstance(r, dict) for r in replies)):
        error = "unreadable ovsdb-client output: not a list of replies"
    if error:
        return None, version, error
    data = {}
    for name, reply in zip(names, replies):
        if "error" in reply:
            return data, version, "%s: %s" % (name, reply.get("details") or reply["error"])
        try:
            data[name] = _decode_rows(reply, column_decoders(schema["tables"][name]))
        except ValueError as exc:
            return None, version, "unreadable ovsdb-client output: table %s: %s" % (name, exc)
    error = ("tables not in this schema: %s" % ", ".join(missing)) if missing else None
    return data, version, error


# ---- OVSDB monitor_cond_since: read only what changed since a transaction id ----
#
# ovsdb-server (ovsdb/jsonrpc-server.c ``ovsdb_jsonrpc_monitor_create``) answers
# ``monitor_cond_since [db, monitor-id, requests, last-txn-id]`` with
# ``[found, last-txn-id, table-updates2]``: ``found`` when ``last-txn-id`` is still in
# the database's transaction history (then the updates are the changes since it),
# else every row as "initial".  Only clustered and relay databases keep a history
# (``ovsdb_monitor_get_last_txnid`` gives the zero UUID for a standalone one).
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
OVSDB_DEFAULT_PORT = 6640
MAX_OVSDB_REPLY = 2 << 30


class OvsdbRpcError(Exception):
    """The server answered with an error (``unsupported``: it does not know the method)."""

    def __init__(self, message, unsupported=False):
        Exception.__init__(self, message)
        self.unsupported = unsupported


def _host_port(text):
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return host, int(port) if port else OVSDB_DEFAULT_PORT


def ovsdb_connect(remote, timeout, ssl_files=None):
    """A socket to the first of ``remote``'s servers that answers (``unix:PATH``,
    ``tcp:HOST[:PORT]``, ``ssl:HOST[:PORT]``, a comma-separated list of them, or a
    bare file name, as ovsdb-client and ovn-remote spell them).  ``ssl_files``:
    (private key, certificate, CA certificate); the server's certificate is checked
    against the CA but not its name, as OVS's stream-ssl does."""
    errors = []
    for one in [r.strip() for r in remote.split(",") if r.strip()]:
        kind, _, rest = one.partition(":")
        try:
            if kind == "unix" or one.startswith("/"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(rest if kind == "unix" else one)
            elif kind in ("tcp", "ssl"):
                sock = socket.create_connection(_host_port(rest), timeout)
                if kind == "ssl":
                    key, cert, ca = ssl_files or (None, None, None)
                    if not (key and cert and ca):
                        raise OSError("ssl needs a private key, a certificate and a CA")
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.load_cert_chain(cert, key)
                    context.load_verify_locations(ca)
                    sock = context.wrap_socket(sock)
            else:
                raise OSError("unknown kind of remote")
            return sock
        except (OSError, ValueError) as exc:
            errors.append("%s: %s" % (one, exc))
    raise OSError("; ".join(errors) or "no remote")


class OvsdbSession(object):
    """One JSON-RPC connection: requests out, replies in, the server's ``echo``
    answered; at most ``max_bytes`` read before ``deadline`` (time.time())."""

    def __init__(self, sock, deadline, max_bytes=MAX_OVSDB_REPLY):
        self._sock = sock
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._buffer = bytearray()
        self._read = 0
        self._ids = 0
        self._decoder = json.JSONDecoder()

    def _send(self, message):
        self._sock.sendall(json.dumps(message, separators=(",", ":")).encode("utf-8"))

    def call(self, method, params):
        """The result of one request; OvsdbRpcError if the server answers with an error."""
        self._ids += 1
        ident = self._ids
        self._send({"method": method, "params": params, "id": ident})
        while True:
            message = self._next_message()
            if message.get("method") == "echo" and "id" in message:
                self._send({"result": message.get("params"), "error": None,
                            "id": message["id"]})
            elif message.get("id") == ident and "method" not in message:
                error = message.get("error")
                if error is not None:
                    text = error.get("error") if isinstance(error, dict) else error
                    details = error.get("details") if isinstance(error, dict) else None
                    raise OvsdbRpcError("%s%s" % (text, ": %s" % details if details else ""),
                                        unsupported=text == "unknown method")
                return message.get("result")

    def _ready(self):
        pending = getattr(self._sock, "pending", None)
        if pending is not None and pending():
            return True
        return bool(select.select([self._sock], [], [], 0)[0])

    def _next_message(self):
        """The next whole JSON object the server sent.  Messages follow each other
        without separators, so a parse is tried only when the data ends in ``}`` and
        nothing more is waiting (a 100 MB reply is parsed once or twice, not per read)."""
        while True:
            if bytes(self._buffer[-64:]).rstrip().endswith(b"}") and not self._ready():
                text = self._buffer.decode("utf-8").lstrip()
                try:
                    message, end = self._decoder.raw_decode(text)
                except ValueError:
                    message = None
                except RecursionError:
                    raise ValueError("the server's message is nested too deeply") from None
                if message is not None:
                    self._buffer = bytearray(text[end:].encode("utf-8"))
                    if not isinstance(message, dict):
                        raise ValueError("the server sent something other than a message")
                    return message
            left = self._deadline - time.time()
            if left <= 0:
                raise OSError("timed out reading the database")
            self._sock.settimeout(left)
            chunk = self._sock.recv(MAX_CHUNK)
            if not chunk:
                raise OSError("the server closed the connection")
            self._read += len(chunk)
            if self._read > self._max_bytes:
                raise OSError("the database's answer is over %d bytes" % self._max_bytes)
            self._buffer += chunk


def _monitor_session(remote, database, ssl_files, deadline, max_bytes):
    """A session to ``database`` for monitors: (socket, session, schema, the _Server
    Database row or None)."""
    sock = ovsdb_connect(remote, max(deadline - time.time(), 0.001), ssl_files)
    try:
        session = OvsdbSession(sock, deadline, max_bytes)
        schema = session.call("get_schema", [database])
        problem = _schema_problem(schema)
        if problem:
            raise ValueError(problem)
        server = None
        try:
            reply = session.call("transact", ["_Server", {
                "op": "select", "table": "Database", "where": [["name", "==", database]],
                "columns": ["model", "cid", "leader", "connected"]}])
            rows = reply[0].get("rows") if isinstance(reply, list) and reply else None
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                server = dict((k, ovsdb_decode(v)) for k, v in rows[0].items())
        except OvsdbRpcError:
            server = None
    except BaseException:
        sock.close()
        raise
    return sock, session, schema, server


def _monitor_since(session, database, ident, requests, last_id):
    """One ``monitor_cond_since``: {"found", "last_id", "updates"}."""
    result = session.call("monitor_cond_since",
                          [database, ident, requests, last_id or ZERO_UUID])
    if not (isinstance(result, list) and len(result) == 3
            and isinstance(result[0], bool) and isinstance(result[1], str)
            and isinstance(result[2], dict)):
        raise ValueError("monitor_cond_since's reply is not [found, last-id, updates]")
    return {"found": result[0], "last_id": result[1], "updates": result[2]}


def ovsdb_monitor_read(remote, database, tables, last_id=None, ssl_files=None,
                       timeout=600, max_bytes=MAX_OVSDB_REPLY):
    """One ``monitor_cond_since`` of ``tables`` (names; every column, and
    ``_version``), closed as soon as its reply is in.  Gives the raw answer:
    ``{"schema", "server" (the _Server Database row, or None), "found", "last_id",
    "updates"}``.  OvsdbRpcError(unsupported=True) when the server does not know the
    method (OVS < 2.12); OSError/ValueError for the connection or the data."""
    sock, session, schema, server = _monitor_session(
        remote, database, ssl_files, time.time() + timeout, max_bytes)
    try:
        requests = {}
        for name in tables:
            if name in schema["tables"]:
                columns = sorted(schema["tables"][name]["columns"]) + ["_version"]
                requests[name] = [{"columns": columns}]
        answer = _monitor_since(session, database, "ofrace", requests, last_id)
        answer.update(schema=schema, server=server)
        return answer
    finally:
        try:
            sock.close()
        except OSError:
            pass


def ovsdb_monitor_where(remote, database, table, monitors, ssl_files=None, timeout=600,
                        max_bytes=MAX_OVSDB_REPLY):
    """Several ``monitor_cond_since`` of ``table`` on one session, each
    ``{"where": clauses (rows matching any), "columns": [...], "last_id": id or None}``:
    ``{"schema", "server", "monitors": [{"found", "last_id", "updates"}, ...]}`` in
    their order.  Errors as ``ovsdb_monitor_read``'s."""
    sock, session, schema, server = _monitor_session(
        remote, database, ssl_files, time.time() + timeout, max_bytes)
    try:
        if table not in schema["tables"]:
            raise ValueError("no table %s in %s" % (table, database))
        answers = [_monitor_since(session, database, "ofrace-%d" % i,
                                  {table: [{"columns": m["columns"], "where": m["where"]}]},
                                  m.get("last_id"))
                   for i, m in enumerate(monitors)]
        return {"schema": schema, "server": server, "monitors": answers}
    finally:
        try:
            sock.close()
        except OSError:
            pass


def _default_datum(ctype):
    """A column's default value in OVSDB JSON notation (``ovsdb_datum_init_default``:
    n_min copies of the atomic type's default), as ovsdb-server prints it (a real 0
    is printed "%.*g", i.e. ``0``)."""
    if not isinstance(ctype, dict):
        ctype = {"key": ctype}

    def atom(base):
        kind = base.get("type") if isinstance(base, dict) else base
        return {"integer": 0, "real": 0, "boolean": False, "string": "",
                "uuid": ["uuid", ZERO_UUID]}.get(kind, "")

    key, value = ctype.get("key"), ctype.get("value")
    if value is not None:
        return ["map", [[atom(key), atom(value)]] if ctype.get("min", 1) else []]
    if not ctype.get("min", 1):
        return ["set", []]
    return atom(key)


def monitor_table_decoder(table_schema, only=None):
    """``(decoders, defaults, columns)`` for one table (``only``: of these columns, as a
    monitor of them sends): row cells are decoded as ``ovsdb_select`` decodes them;
    ``defaults`` are the decoded values of the columns an "initial"/"insert" leaves out
    (ovsdb/monitor.c sends only non-default ones)."""
    decoders = column_decoders(table_schema)
    columns = table_schema.get("columns", {})
    if only is not None:
        columns = dict((col, columns[col]) for col in only if col in columns)
        decoders = dict((col, decoders[col]) for col in columns)
    defaults = dict((col, decoders[col](_default_datum(spec.get("type"))))
                    for col, spec in columns.items())
    extra = ["_uuid", "_version"] if only is None else ["_uuid"]
    return decoders, defaults, sorted(list(columns) + extra)


def decode_monitor_updates(schema, updates, only=None):
    """table-updates2 → ``{table: {uuid: (kind, cells)}}``: kind "initial"/"insert"
    (cells: a whole row, or its ``only`` columns, defaults filled in, keys in
    ``ovsdb_select``'s order),
    "modify" (cells: the decoded diff, per column) or "delete" (None).  ValueError
    when the updates are not shaped as ovsdb-server sends them."""
    result = {}
    if not isinstance(updates, dict):
        raise ValueError("updates are not an object")
    for table, rows in updates.items():
        spec = schema["tables"].get(table)
        if spec is None or not isinstance(rows, dict):
            raise ValueError("updates for an unknown table %r" % table)
        decoders, defaults, order = monitor_table_decoder(spec, only)
        decoded = result[table] = {}
        for uuid, change in rows.items():
            if not isinstance(change, dict) or len(change) != 1:
                raise ValueError("%s %s: not one change" % (table, uuid))
            (kind, cells), = change.items()
            try:
                if kind == "delete":
                    decoded[uuid] = ("delete", None)
                    continue
                if kind not in ("initial", "insert", "modify") or not isinstance(cells, dict):
                    raise ValueError("%s %s: unknown change %r" % (table, uuid, kind))
                values = dict((col, decoders[col](val)) for col, val in cells.items())
            except (TypeError, IndexError, KeyError, AttributeError, RecursionError):
                raise ValueError("%s %s: a cell does not have its column's type"
                                 % (table, uuid)) from None
            if kind == "modify":
                decoded[uuid] = ("modify", values)
                continue
            values["_uuid"] = uuid
            row = dict((col, values[col] if col in values else defaults.get(col))
                       for col in order)
            decoded[uuid] = (kind, row)
    return result


# --- a bridge's flow tables in OpenFlow, to tell whether they changed -------------
#
# ``ovs-ofctl dump-flows`` of a 250k-flow bridge costs seconds, most of it in printing.
# The same flows in binary (one OpenFlow 1.3 flow-stats request on the bridge's
# management socket, as ovs-ofctl itself connects) cost a fraction: enough to digest
# each table (everything but the counters and ages) and to send the counters, so a
# collector holding the text of unchanged tables reads nothing else.

OFP13 = 4
_OFP_HEADER = struct.Struct("!BBHI")
# ofp_flow_stats (OpenFlow 1.3, 7.3.5.2), 48 bytes before the match: length, table_id,
# pad, duration_sec, duration_nsec, priority, idle and hard timeouts, flags, pad, cookie,
# packet_count, byte_count.
_FLOW_STATS_REQUEST = (struct.pack("!HH4x", 1, 0)                   # OFPMP_FLOW
                       + struct.pack("!B3xII4xQQ", 0xff, 0xffffffff, 0xffffffff, 0, 0)
                       + bytes.fromhex("0001000400000000"))         # an empty OXM match
MAX_FLOW_STATS_BYTES = 1 << 30


def bridge_socket(bridge):
    """The bridge's OpenFlow management socket, where ``ovs-ofctl`` connects:
    ``$OVS_RUNDIR/BRIDGE.mgmt`` (default /var/run/openvswitch)."""
    rundir = os.environ.get("OVS_RUNDIR") or "/var/run/openvswitch"
    return os.path.join(rundir, bridge + ".mgmt")


class FlowStats(object):
    """One read of a bridge's flows in binary: per table a digest of its flows in the
    order the switch gives them (what ``dump-flows`` prints, less counters and ages),
    and every flow's counters in that order.  ``handled`` is set once the switch has
    answered (it builds the whole answer at once), so a dump started after it shows the
    flows no earlier than this read did.  ``error`` says why there is no answer."""

    def __init__(self, bridge, timeout=60):
        self.bridge = bridge
        self.timeout = timeout
        self.handled = threading.Event()
        self.digests = None
        self.sizes = None         # [table, how many flows], in the switch's order
        self.counters = None
        self.error = None

    def run(self):
        try:
            self._read()
        except (OSError, ValueError, struct.error) as exc:
            self.error = str(exc) or type(exc).__name__
            self.digests = self.counters = None
        finally:
            self.handled.set()

    def _read(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        deadline = time.time() + self.timeout
        try:
            sock.connect(bridge_socket(self.bridge))
            sock.sendall(_OFP_HEADER.pack(OFP13, 0, 8, 1))
            sock.sendall(_OFP_HEADER.pack(OFP13, 18, 8 + len(_FLOW_STATS_REQUEST), 2)
                         + _FLOW_STATS_REQUEST)
            messages = _OpenFlowMessages(sock, deadline)
            hashes, counters, sizes = {}, bytearray(), {}
            more = True
            while more:
                version, kind, xid, message = messages.next()
                if kind == 2:                                   # echo request
                    sock.sendall(_OFP_HEADER.pack(version, 3, len(message), xid)
                                 + message[8:])
                    continue
                if kind == 1:
                    raise ValueError("the switch refused the flow-stats request "
                                     "(OpenFlow error %s)" % message[8:12].hex())
                if kind != 19 or xid != 2:
                    continue                                    # hello, or unasked
                if version != OFP13 or message[8:10] != b"\x00\x01":
                    raise ValueError("unexpected flow-stats reply")
                self.handled.set()
                more = struct.unpack_from("!H", message, 10)[0] & 1
                self._add(message, hashes, counters, sizes)
            self.digests = dict((str(t), h.hexdigest()) for t, h in hashes.items())
            self.sizes = [[t, n] for t, n in sizes.items()]
            self.counters = {"count": len(counters) // COUNTERS.size, "data": base64.b64encode(
                zlib.compress(bytes(counters), 1)).decode("ascii")}
        finally:
            sock.close()

    @staticmethod
    def _add(message, hashes, counters, sizes):
        """One reply's flows: their digests go to ``hashes`` (table → sha1), their
        counters, as ``COUNTERS`` each, to ``counters``, how many per table to ``sizes``.
        The hot loop of a read (250k flows): slices of a memoryview copy nothing."""
        data = bytearray(message)
        view = memoryview(data)
        head = _ENTRY_HEAD.unpack_from
        offset, end = 16, len(data)
        table, run, count = None, 16, 0
        zero8, zero16 = _ZERO8, _ZERO16
        while offset < end:
            length, number = head(data, offset)
            if length < _FLOW_STATS_SIZE or offset + length > end:
                raise ValueError("a flow-stats entry is cut")
            if number != table:
                if table is not None:
                    hashes[table].update(view[run:offset])
                    sizes[table] += count
                table, run, count = number, offset, 0
                if number not in hashes:
                    hashes[number] = hashlib.sha1()
                    sizes[number] = 0
            count += 1
            counters += view[offset + 4:offset + 12]       # duration (s, ns)
            counters += view[offset + 32:offset + 48]      # packets, bytes
            view[offset + 4:offset + 12] = zero8
            view[offset + 32:offset + 48] = zero16
            offset += length
        if table is not None:
            hashes[table].update(view[run:end])
            sizes[table] += count
        view.release()


_ENTRY_HEAD = struct.Struct("!HB")
_FLOW_STATS_SIZE = 48
_ZERO8, _ZERO16 = bytes(8), bytes(16)
# One flow's counters as the agent sends them: duration (seconds, nanoseconds),
# packets, bytes, in network order.
COUNTERS = struct.Struct("!IIQQ")


class _OpenFlowMessages(object):
    """Whole OpenFlow messages from a socket, within a deadline and a byte budget."""

    def __init__(self, sock, deadline):
        self._sock, self._deadline = sock, deadline
        self._buffer = bytearray()
        self._start = 0
        self._total = 0

    def next(self):
        while True:
            have = len(self._buffer) - self._start
            if have >= 8:
                version, kind, length, xid = _OFP_HEADER.unpack_from(self._buffer, self._start)
                if length < 8:
                    raise ValueError("a malformed OpenFlow message")
                if have >= length:
                    message = bytes(self._buffer[self._start:self._start + length])
                    self._start += length
                    return version, kind, xid, message
            if time.time() > self._deadline:
                raise ValueError("timed out")
            if self._start:
                del self._buffer[:self._start]
                self._start = 0
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise ValueError("the switch closed the connection")
            self._total += len(chunk)
            if self._total > MAX_FLOW_STATS_BYTES:
                raise ValueError("over %d bytes of flows" % MAX_FLOW_STATS_BYTES)
            self._buffer += chunk


# How long the switch may take to start answering the binary read (it encodes 250k
# flows in well under a second), and to finish it; past either the text is read alone.
FLOW_STATS_ANSWER = 10
FLOW_STATS_TIMEOUT = 30


def read_flows(reader, bridge, known):
    """A bridge's ``dump-flows``, with each table's digest when the switch answers in
    binary first; nothing but the digests and counters when they equal ``known`` (the
    collector's, for the text it holds)."""
    argv = ["ovs-ofctl", "dump-flows", "--no-names", bridge]
    stats = FlowStats(bridge, FLOW_STATS_TIMEOUT)
    thread = threading.Thread(target=stats.run)
    thread.daemon = True
    thread.start()
    # digests that do not precede the text dump say nothing of it
    usable = stats.handled.wait(FLOW_STATS_ANSWER)
    if known is not None and usable:
        thread.join(FLOW_STATS_TIMEOUT)
        if not thread.is_alive() and stats.digests is not None and stats.digests == known:
            result = _result(["(OpenFlow 1.3 flow stats)", bridge_socket(bridge)], _now(), 0,
                             unchanged=True)
            result["flow_tables"] = {"digests": stats.digests, "sizes": stats.sizes,
                                     "counters": stats.counters}
            return reader.record(result)
    result = reader.stream(argv)
    thread.join(FLOW_STATS_TIMEOUT if usable else 0)
    if usable and not thread.is_alive() and stats.digests is not None \
            and not result.get("error"):
        result["flow_tables"] = {"digests": stats.digests, "sizes": stats.sizes}
    elif stats.error or not usable:
        result["flow_tables"] = {"error": stats.error or "the switch did not answer the "
                                 "flow-stats request in %ds" % FLOW_STATS_ANSWER}
    return result


def _bridge_jobs(name, flow_digests=None):
    """The reads of one bridge; with ``flow_digests`` (bridge → the digests of the flow
    text the collector holds, or None) its flows are read by ``read_flows``."""
    jobs = dict(((name, key), argv + [name]) for key, argv, _ in BRIDGE_READS)
    if flow_digests is not None:
        known = flow_digests.get(name)
        jobs[(name, "flows")] = lambda reader: read_flows(reader, name, known)
    return jobs


def _bridge_doc(name, results):
    """A bridge's reads; a streamed dump is left as ``{"blob": id}`` for
    ``resolve_blobs`` to turn into lines on the collector's side."""
    bridge = {"name": name, "errors": {}}
    for key, _, keep in BRIDGE_READS:
        result = results[(name, key)]
        if "flow_tables" in result:
            bridge["flow_tables"] = result["flow_tables"]
        if result.get("unchanged"):
            bridge[key] = []
            bridge["flows_unchanged"] = True
        elif result["error"]:
            bridge["errors"][key] = result["error"]
            bridge[key] = [] if keep == "lines" else ""
        elif result.get("blob"):
            bridge[key] = {"blob": result["blob"]}
        elif keep == "lines":
            bridge[key] = dump_lines(result["stdout"])
        else:
            bridge[key] = result["stdout"]
    return bridge


def resolve_blobs(doc, blobs):
    """Put the streamed dumps back into ``doc``'s bridges, as lines."""
    for bridge in doc.get("bridges", {}).values():
        for key, _, keep in BRIDGE_READS:
            value = bridge.get(key)
            if isinstance(value, dict) and "blob" in value:
                blob = blobs.pop(value["blob"], "")
                if isinstance(blob, list):  # already cut into lines as it arrived
                    bridge[key] = blob if keep == "lines" else "\n".join(blob)
                else:
                    bridge[key] = dump_lines(blob) if keep == "lines" else blob
    return doc


def run_all(reader, jobs, workers=8, streamed=()):
    """Run independent read-only commands at once: a node answers in the time of the
    slowest one (the big dump-flows), not of their sum.  Keys in ``streamed``
    go through ``reader.stream``."""
    results = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = dict((pool.submit(argv, reader) if callable(argv) else
                        pool.submit(reader.stream if key in streamed else reader.run, argv),
                        key) for key, argv in jobs.items())
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


def _streamed_keys(jobs):
    return set(key for key in jobs if isinstance(key, tuple) and key[1] in ("flows", "groups"))


def collect_node(run, options=None, stream=None, on_node=False):
    """Read everything ofrace needs from one node, through ``run`` (and ``stream``
    for the dumps that can be big); ``on_node``: running there, so its switch's
    sockets are this machine's (``options["flow_digests"]``, see ``read_flows``)."""
    options = options or {}
    digests = options.get("flow_digests") if on_node else None
    digests = digests if isinstance(digests, dict) else None
    reader = Reader(run, stream)
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
            "status": ["ovn-appctl", "-t", "ovn-controller", "connection-status"],
            "conntrack": CONNTRACK_READ}
    jobs.update(_bridge_jobs(guess, digests))
    pool = ThreadPoolExecutor(max_workers=1)
    ovsdb_future = pool.submit(ovsdb_select, reader, options.get("ovs_remote"), "Open_vSwitch",
                               OVS_TABLES)
    results = run_all(reader, jobs, streamed=_streamed_keys(jobs))
    ovsdb, _, error = ovsdb_future.result()
    pool.shutdown()
    doc["hostname"] = _first_line(results["hostname"])
    doc["ovsdb"] = ovsdb or {}
    if error:
        doc["errors"].append({"what": "local OVSDB", "error": error})
    ovs_row = (doc["ovsdb"].get("Open_vSwitch") or [{}])[0]
    ext = ovs_row.get("external_ids") if isinstance(ovs_row, dict) else None
    ext = ext if isinstance(ext, dict) else {}
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
            more.update(_bridge_jobs(name, digests))
    results.update(run_all(reader, more, streamed=_streamed_keys(more)))
    for name in bridges:
        doc["bridges"][name] = _bridge_doc(name, results)
        for key, error in sorted(doc["bridges"][name]["errors"].items()):
            doc["errors"].append({"what": "%s %s" % (name, key), "error": error})

    dpif = results["dpif"]
    doc["dpif"] = dpif["stdout"] if not dpif["error"] else ""
    if dpif["error"]:
        doc["errors"].append({"what": "dpif/show", "error": dpif["error"]})
    doc["ovn_controller_status"] = _first_line(results["status"])
    text, truncated, error = conntrack_doc(results["conntrack"])
    doc["conntrack"], doc["conntrack_truncated"] = text, truncated
    if error:
        doc["errors"].append({"what": "conntrack", "error": error})
    elif truncated:
        doc["errors"].append({"what": "conntrack", "error": "the connection table was cut "
                              "after %d bytes (%d entries)" % (MAX_CONNTRACK_BYTES,
                                                               text.count("\n"))})
    doc["finished"] = _now()
    doc["commands"] = reader.commands
    return doc


def monitor_document(spec, writer):
    """The agent's "ovsdb_monitor" mode (a database read through this node): the
    answer of ``ovsdb_monitor_read`` (given "monitors", of ``ovsdb_monitor_where``) as
    one blob of JSON (it can be far larger than a document frame), the document naming
    it, or saying what went wrong."""
    try:
        if spec.get("monitors") is not None:
            answer = ovsdb_monitor_where(spec["remote"], spec["database"], spec["table"],
                                         spec["monitors"], spec.get("ssl_files"),
                                         spec.get("timeout", 600))
        else:
            answer = ovsdb_monitor_read(spec["remote"], spec["database"], spec["tables"],
                                        spec.get("last_id"), spec.get("ssl_files"),
                                        spec.get("timeout", 600))
    except OvsdbRpcError as exc:
        return {"agent_version": AGENT_VERSION, "error": str(exc),
                "unsupported": exc.unsupported}
    except (OSError, ValueError) as exc:
        return {"agent_version": AGENT_VERSION, "error": str(exc) or type(exc).__name__}
    return {"agent_version": AGENT_VERSION, "monitor": {"blob": json_blob(writer, answer)}}


def json_blob(writer, value):
    """``value`` as JSON in a blob of its own (it can be far larger than a document
    frame): the single answer of the "ovsdb_monitor" and "appctl" modes."""
    data = json.dumps(value, separators=(",", ":")).encode("utf-8")
    blob = writer.new_blob()
    for start in range(0, len(data), MAX_CHUNK):
        writer.frame("B", blob, data[start:start + MAX_CHUNK])
    return blob


# The unixctl commands the "appctl" mode sends: reads only, as ovs-appctl would send them.
APPCTL_READS = ("ofproto/trace",)
MAX_APPCTL_REPLY = 256 << 20


def vswitchd_control_socket():
    """ovs-vswitchd's unixctl socket, found as ``ovs-appctl -t ovs-vswitchd`` finds it:
    ``$OVS_RUNDIR`` (default /var/run/openvswitch), its pidfile, ``ovs-vswitchd.PID.ctl``."""
    rundir = os.environ.get("OVS_RUNDIR") or "/var/run/openvswitch"
    with open(os.path.join(rundir, "ovs-vswitchd.pid")) as pidfile:
        pid = int(pidfile.read(64).strip())
    return os.path.join(rundir, "ovs-vswitchd.%d.ctl" % pid)


def appctl_document(spec, writer):
    """The agent's "appctl" mode: ``spec["calls"]`` (each a command of APPCTL_READS, then
    its arguments) sent to ovs-vswitchd over one unixctl connection, so a thousand
    ofproto/traces cost one process, not a thousand.  The answers, in order, as one blob:
    each ``{"output": TEXT}`` (what ovs-appctl prints) or ``{"error": TEXT}``."""
    calls = spec.get("calls") or []
    refused = [c for c in calls if not isinstance(c, list) or not c or c[0] not in APPCTL_READS
               or not all(isinstance(a, str) for a in c)]
    if refused:
        return {"agent_version": AGENT_VERSION,
                "error": "only %s may be sent" % ", ".join(APPCTL_READS)}
    deadline = time.time() + float(spec.get("timeout", 120))
    answers = []
    try:
        sock = ovsdb_connect("unix:" + vswitchd_control_socket(), max(1.0, deadline - time.time()))
        try:
            session = OvsdbSession(sock, deadline, MAX_APPCTL_REPLY)
            for call in calls:
                try:
                    answers.append({"output": session.call(call[0], call[1:])})
                except OvsdbRpcError as exc:
                    answers.append({"error": str(exc)})
        finally:
            sock.close()
    except (OSError, ValueError) as exc:
        return {"agent_version": AGENT_VERSION, "error": str(exc) or type(exc).__name__}
    return {"agent_version": AGENT_VERSION, "appctl": {"blob": json_blob(writer, answers)}}


def main(argv):
    options = json.loads(argv[1]) if len(argv) > 1 else {}
    writer = FrameWriter(getattr(sys.stdout, "buffer", sys.stdout), options.get("compress"))
    if options.get("appctl"):
        doc = appctl_document(options["appctl"], writer)
        writer.frame("D", 0, json.dumps(doc, separators=(",", ":")).encode("utf-8"))
        writer.close()
        return 0
    if options.get("ovsdb_monitor"):
        doc = monitor_document(options["ovsdb_monitor"], writer)
        writer.frame("D", 0, json.dumps(doc, separators=(",", ":")).encode("utf-8"))
        writer.close()
        return 0
    doc = collect_node(run_local, options, lambda command: run_streamed(command, writer),
                       on_node=True)
    writer.frame("D", 0, json.dumps(doc, separators=(",", ":")).encode("utf-8"))
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
