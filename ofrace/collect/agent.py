"""Run the node agent (agents/ofrace_agent.py) through a transport.

The agent's source travels inside the command line (compressed, base64), so
no file is written on the node and templates need no stdin.  A node with no
``python3`` is read command by command instead: the same agent code runs
here and sends each of its read-only commands through the transport.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from functools import cache
from importlib import resources

from ofrace.agents import ofrace_agent
from ofrace.collect.node_document import DocumentError, check_document
from ofrace.collect.transport import DEFAULT_MAX_OUTPUT, Budget, LimitExceeded, TransportError
from ofrace.errors import EnvironmentFailure
from ofrace.memory import building


class AgentError(EnvironmentFailure):
    """The agent ran but did not produce a usable document."""


@cache
def agent_source() -> bytes:
    return resources.files("ofrace.agents").joinpath("ofrace_agent.py").read_bytes()


@cache
def _bootstrap() -> str:
    packed = base64.b64encode(zlib.compress(agent_source(), 9)).decode()
    return ("import base64,zlib;exec(compile(zlib.decompress(base64.b64decode("
            f"'{packed}')),'ofrace_agent','exec'))")


def agent_command(options: dict) -> list[str]:
    """The argv that runs the agent with ``options`` on a node.  ``-S``: the agent needs
    the standard library only, and a host's site-packages (.pth files run at every
    start) can cost more than the agent's own start."""
    return ["python3", "-S", "-c", _bootstrap(), json.dumps(options, separators=(",", ":"))]


# The most of a node's stderr kept in an error: its end, where the reason is.
ERROR_TAIL = 2000


def _stderr_text(stderr: bytes) -> str:
    """The end of what a node printed on stderr (it may have printed megabytes)."""
    return stderr[-ERROR_TAIL:].decode(errors="replace").strip()


def _python_missing(rc: int, stderr: bytes) -> bool:
    text = _stderr_text(stderr).lower()
    return rc == 127 or ("python3" in text and ("not found" in text or "no such file" in text))


def transport_runner(transport, budget: Budget | None = None, timeout: float = 120):
    """Adapt a transport to the agent's ``run(argv) -> result`` contract; every command
    runs within ``budget`` (one deadline, one byte count for them all), else ``timeout``."""

    def run(argv):
        started = time.time()
        out = transport.run(argv, budget=budget or Budget(timeout))
        error = None
        if out.rc != 0:
            error = _stderr_text(out.stderr) or f"exit status {out.rc}"
        return {"argv": argv, "rc": out.rc, "stdout": out.stdout.decode(errors="replace"),
                "started": started, "elapsed": time.time() - started, "error": error}

    return run


def run_agent(transport, options: dict | None = None, budget: Budget | None = None) -> dict:
    """Read one node within ``budget``; returns the agent's document (``mode`` says how
    it ran), checked against the node document's schema (raises AgentError, or
    TransportError when the node cannot be reached or runs out of its budget)."""
    options = dict(options or {})
    options.setdefault("compress", True)
    budget = budget or Budget()
    stream = AgentStream(budget.max_output)
    with building():
        out = transport.run(agent_command(options), on_stdout=stream.feed, budget=budget)
    if out.rc != 0:
        if _python_missing(out.rc, out.stderr):
            return _agentless(transport, options, budget)
        lines = _stderr_text(out.stderr).splitlines()
        raise AgentError(lines[-1][-300:] if lines else f"agent exited with status {out.rc}")
    return stream.document()


def _agentless(transport, options: dict, budget: Budget) -> dict:
    """The agent's reading plan run from here, one command at a time through the
    transport.  The node's output is interpreted here, so what would have been a
    crash of the agent on the node is this node's error, as it would have been."""
    try:
        doc = ofrace_agent.collect_node(transport_runner(transport, budget), options)
    except TransportError:
        raise
    except Exception as exc:  # the node's output, not ofrace, is at fault; see above
        raise AgentError(f"agentless read failed on the node's output: "
                         f"{type(exc).__name__}: {str(exc)[:200]}") from None
    doc["mode"] = "agentless (no python3 on the node)"
    try:
        check_document(doc)
    except DocumentError as exc:
        raise AgentError(f"unusable answer: {exc}") from None
    return doc


class AgentStream:
    """The agent's stdout, decoded as it arrives: un-gzipped, read as frames, and
    each streamed dump cut into lines, so that little is left to do when the last
    byte is in (``ofrace_agent.FrameReader`` and ``DumpLines`` do the reading).

    At most ``max_output`` bytes are accepted after decompression (a few MB of
    gzip can be gigabytes); anything malformed raises AgentError at once, so the
    transport stops reading and ends the node's command.
    """

    def __init__(self, max_output: int = DEFAULT_MAX_OUTPUT):
        self._unzip = None
        self._started = False
        self._left = max_output
        self._max_output = max_output
        self._frames = ofrace_agent.FrameReader(
            lambda: _ChargedLines(self._charge), min(max_output, ofrace_agent.MAX_DOCUMENT))

    def feed(self, chunk: bytes) -> None:
        if not self._started:
            self._started = True
            if chunk[:2] == b"\x1f\x8b":
                self._unzip = zlib.decompressobj(31)
        if self._unzip is None:
            self._read(chunk)
            return
        while chunk:
            try:  # at most a chunk's worth at a time, however well it compresses
                data = self._unzip.decompress(chunk, ofrace_agent.MAX_CHUNK)
            except zlib.error as exc:
                raise AgentError(f"agent output is truncated or corrupt: {exc}") from None
            chunk = self._unzip.unconsumed_tail
            self._read(data)
            if self._unzip.eof and (chunk or self._unzip.unused_data):
                raise AgentError("agent output is corrupt: data after the compressed stream")

    def _charge(self, count: int) -> None:
        self._left -= count
        if self._left < 0:
            raise LimitExceeded(f"output exceeded {self._max_output} bytes (uncompressed)")

    def _read(self, data: bytes) -> None:
        self._charge(len(data))
        try:
            self._frames.feed(data)
        except ValueError as exc:
            raise AgentError(f"agent output is unreadable: {exc}") from None

    def document(self) -> dict:
        """The agent's document, with its streamed dumps as lines (raises AgentError)."""
        if self._unzip is not None and not self._unzip.eof:
            raise AgentError(
                "agent output is truncated or corrupt: the compressed stream ends early")
        try:
            doc = self._frames.document()
        except ValueError as exc:
            raise AgentError(f"agent output is unreadable: {exc}") from None
        version = doc.get("agent_version") if isinstance(doc, dict) else None
        if version is not None and version != ofrace_agent.AGENT_VERSION:
            raise AgentError(f"agent version {str(version)[:20]!r} does not match "
                             f"{ofrace_agent.AGENT_VERSION}")
        try:
            check_document(doc, resolved=False)
        except DocumentError as exc:
            raise AgentError(f"unusable answer: {exc}") from None
        ofrace_agent.resolve_blobs(
            doc, {k: lines.finish() for k, lines in self._frames.blobs.items()})
        doc["mode"] = "agent"
        return doc


# What a kept dump line costs here beyond its characters (a str object and its list
# slot): counted against the node's max_output, so that a million 2-byte lines are
# bounded by what they cost in memory, not by their few bytes on the wire.
LINE_COST = 64


class _ChargedLines(ofrace_agent.DumpLines):
    """``DumpLines`` that charges ``LINE_COST`` per line it keeps to its stream."""

    def __init__(self, charge):
        super().__init__()
        self._charge = charge

    def add(self, data: bytes) -> None:
        before = len(self.lines)
        super().add(data)
        self._charge(LINE_COST * (len(self.lines) - before))


class PythonMissing(AgentError):
    """The node has no python3: the agent cannot run there."""


def run_agent_mode(transport, options: dict, budget: Budget) -> tuple[dict, dict]:
    """Run one of the agent's single-answer modes ("ovsdb_monitor", "appctl") on a node:
    its document and its blobs.  PythonMissing when the node has no python3; AgentError
    when the agent failed or its output is corrupt or too big."""
    out = transport.run(agent_command({"compress": True, **options}), budget=budget)
    if out.rc != 0:
        if _python_missing(out.rc, out.stderr):
            raise PythonMissing("the node has no python3")
        lines = _stderr_text(out.stderr).splitlines()
        raise AgentError(lines[-1][-300:] if lines else f"agent exited with {out.rc}")
    unzip = zlib.decompressobj(31)
    try:
        payload = unzip.decompress(out.stdout, budget.max_output)
        if unzip.unconsumed_tail:
            raise AgentError(f"the answer is over {budget.max_output} bytes")
        return ofrace_agent.read_frames(payload)
    except (zlib.error, ValueError) as exc:
        raise AgentError(f"agent output is corrupt: {exc}") from None


def blob_json(doc: dict, blobs: dict, key: str):
    """The JSON blob a single-answer mode's document names under ``key`` (AgentError
    when it names none, or the blob is not JSON: a node's answer may be anything)."""
    named = doc.get(key) if isinstance(doc, dict) else None
    blob = named.get("blob") if isinstance(named, dict) else None
    try:
        return json.loads(blobs.get(blob, "") if isinstance(blob, int) else "")
    except (ValueError, RecursionError) as exc:
        raise AgentError(f"agent output is corrupt: {str(exc)[:200]}") from None


def read_agent_output(payload: bytes) -> dict:
    """The agent's whole stdout (framed, maybe gzipped) → its document, dumps as lines."""
    stream = AgentStream()
    with building():
        stream.feed(payload)
        return stream.document()


__all__ = ["AgentError", "PythonMissing", "TransportError", "agent_command", "blob_json",
           "run_agent", "run_agent_mode", "transport_runner"]
