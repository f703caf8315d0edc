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
from ofrace.collect.transport import TransportError
from ofrace.memory import building


class AgentError(Exception):
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
    """The argv that runs the agent with ``options`` on a node."""
    return ["python3", "-c", _bootstrap(), json.dumps(options, separators=(",", ":"))]


def _python_missing(rc: int, stderr: bytes) -> bool:
    text = stderr.decode(errors="replace").lower()
    return rc == 127 or ("python3" in text and ("not found" in text or "no such file" in text))


def transport_runner(transport, timeout: float = 120):
    """Adapt a transport to the agent's ``run(argv) -> result`` contract."""

    def run(argv):
        started = time.time()
        out = transport.run(argv, timeout=timeout)
        error = None
        if out.rc != 0:
            error = out.stderr.decode(errors="replace").strip() or f"exit status {out.rc}"
        return {"argv": argv, "rc": out.rc, "stdout": out.stdout.decode(errors="replace"),
                "started": started, "elapsed": time.time() - started, "error": error}

    return run


def run_agent(transport, options: dict | None = None, timeout: float = 300) -> dict:
    """Read one node; returns the agent's document (``mode`` says how it ran)."""
    options = dict(options or {})
    options.setdefault("compress", True)
    stream = AgentStream()
    with building():
        out = transport.run(agent_command(options), timeout=timeout, on_stdout=stream.feed)
    if out.rc != 0:
        if _python_missing(out.rc, out.stderr):
            doc = ofrace_agent.collect_node(transport_runner(transport, timeout), options)
            doc["mode"] = "agentless (no python3 on the node)"
            return doc
        lines = out.stderr.decode(errors="replace").strip().splitlines()
        raise AgentError(lines[-1] if lines else f"agent exited with status {out.rc}")
    return stream.document()


class AgentStream:
    """The agent's stdout, decoded as it arrives: un-gzipped, read as frames, and
    each streamed dump cut into lines, so that little is left to do when the last
    byte is in (``ofrace_agent.FrameReader`` and ``DumpLines`` do the reading)."""

    def __init__(self):
        self._unzip = None
        self._started = False
        self._frames = ofrace_agent.FrameReader(ofrace_agent.DumpLines)
        self.error: str | None = None

    def feed(self, chunk: bytes) -> None:
        if not self._started:
            self._started = True
            if chunk[:2] == b"\x1f\x8b":
                self._unzip = zlib.decompressobj(31)
        if self.error is not None:
            return
        if self._unzip is not None:
            try:
                chunk = self._unzip.decompress(chunk)
            except zlib.error as exc:
                self.error = f"agent output is truncated or corrupt: {exc}"
                return
        try:
            self._frames.feed(chunk)
        except ValueError as exc:
            self.error = f"agent output is unreadable: {exc}"

    def document(self) -> dict:
        """The agent's document, with its streamed dumps as lines (raises AgentError)."""
        if self.error is None and self._unzip is not None and not self._unzip.eof:
            self.error = "agent output is truncated or corrupt: the compressed stream ends early"
        if self.error:
            raise AgentError(self.error)
        try:
            doc = self._frames.document()
        except ValueError as exc:
            raise AgentError(f"agent output is unreadable: {exc}") from None
        if doc.get("agent_version") != ofrace_agent.AGENT_VERSION:
            raise AgentError(f"agent version {doc.get('agent_version')} does not match "
                             f"{ofrace_agent.AGENT_VERSION}")
        ofrace_agent.resolve_blobs(
            doc, {k: lines.finish() for k, lines in self._frames.blobs.items()})
        doc["mode"] = "agent"
        return doc


def read_agent_output(payload: bytes) -> dict:
    """The agent's whole stdout (framed, maybe gzipped) → its document, dumps as lines."""
    stream = AgentStream()
    with building():
        stream.feed(payload)
        return stream.document()


__all__ = ["AgentError", "TransportError", "agent_command", "run_agent", "transport_runner"]
