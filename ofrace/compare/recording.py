"""A sweep recorded where it ran, and replayed offline with the same comparison.

Why: only the lab can send packets, but CI must check ofrace against the wire on every
run.  A recording keeps what the live sweep had: each conversation's steps as sent, the
raw frames every capture point sent after each step (pcap bytes, not decoded fields),
the connections each datapath listed afterwards, and the snapshot read before each
conversation.  Snapshots are stored once per distinct trace-relevant content (flows
without counters, groups, ports, MAC tables, databases without timestamps), so a
recording stays small while predictions still see what earlier conversations taught the
network.

Layout of a recording directory: ``sweep.json.gz`` and ``snapshot-<digest>.ofr``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from pathlib import Path

from ofrace.compare.generator import Conversation, Entry, PacketClass, Step
from ofrace.compare.sweep import Capture, Expectation, WireSide, run_sweep
from ofrace.compare.verify import VerifyReport
from ofrace.errors import InputError
from ofrace.openflow.bridge import parse_fdb
from ofrace.snapshot import Snapshot

FORMAT = "ofrace-sweep"
VERSION = 1
_COUNTERS = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]*,?\s*")


def trace_digest(snapshot: Snapshot) -> str:
    """A digest of what a trace reads from a snapshot, blind to counters and clocks."""
    view = {"chassis": {}, "databases": {}}
    for name, ch in sorted(snapshot.chassis.items()):
        bridges = {}
        for bname, bridge in sorted(ch.bridges.items()):
            bridges[bname] = {
                "flows": sorted(_COUNTERS.sub("", line) for line in bridge.flows),
                "groups": sorted(bridge.groups or []),
                "tlv": bridge.tlv_map, "ports": bridge.ports_desc,
                "fdb": sorted(parse_fdb(bridge.fdb or "").items())}  # without ages
        ifaces = sorted((i.name, i.bridge, i.ofport, i.type, json.dumps(i.options, sort_keys=True),
                         i.iface_id or "") for i in ch.interfaces)
        view["chassis"][name] = {"bridges": bridges, "interfaces": ifaces,
                                 "versions": [ch.ovs_version, ch.ovn_version]}
    for where, db in snapshot.databases():   # zones' too ("zone NAME southbound")
        view["databases"][where] = {
            table: sorted(json.dumps({k: v for k, v in row.items()
                                      if "timestamp" not in k and k != "_version"},
                                     sort_keys=True, default=str) for row in rows)
            for table, rows in sorted(db.tables.items()) if table != "Chassis_Private"}
    text = json.dumps(view, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _entry(doc) -> Entry | None:
    return Entry(*doc) if doc else None


def _plain_entry(entry: Entry | None):
    return [entry.chassis, entry.bridge, entry.iface, entry.ofport] if entry else None


class RecordingSide:
    """Wraps a live side and writes down everything it answered."""

    def __init__(self, live: WireSide, directory: Path, topology: str):
        self.live, self.dir = live, Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.doc = {"format": FORMAT, "version": VERSION, "topology": topology,
                    "conversations": []}
        self.digests: set[str] = set()
        self.current: dict | None = None

    def begin(self, conversation: Conversation) -> Snapshot:
        snapshot = self.live.begin(conversation)
        digest = trace_digest(snapshot)
        if digest not in self.digests:
            snapshot.save(str(self.dir / f"snapshot-{digest}.ofr"))
            self.digests.add(digest)
        self.current = {"label": conversation.label,
                        "classes": [c.value for c in conversation.classes],
                        "snapshot": digest, "steps": [], "connections": None}
        self.doc["conversations"].append(self.current)
        return snapshot

    def capture_points(self, snapshot: Snapshot) -> set[tuple[str, str]]:
        points = self.live.capture_points(snapshot)
        self.doc.setdefault("capture_points", {})[self.current["snapshot"]] = sorted(points)
        return points

    def send(self, entry: Entry, packet: dict, step: Step, expect: Expectation
             ) -> list[Capture]:
        captures = self.live.send(entry, packet, step, expect)
        self.current["steps"].append({
            "name": step.name, "reply": step.reply, "entry": _plain_entry(entry),
            "packet": packet, "wire": step.wire,
            "captures": [[c.chassis, c.port, c.underlay, c.frame.hex()] for c in captures]})
        return captures

    def connections(self) -> set[tuple] | None:
        found = self.live.connections()
        self.current["connections"] = sorted(found) if found is not None else None
        return found

    def close(self, report: VerifyReport | None = None) -> None:
        """Write the sweep; ``report``: the live comparison, kept beside it for the record."""
        if report is not None:
            self.doc["live"] = report.as_json()
        data = json.dumps(self.doc, separators=(",", ":"), sort_keys=True).encode()
        (self.dir / "sweep.json.gz").write_bytes(gzip.compress(data, mtime=0))


class ReplaySide:
    """Answers a sweep from a recording: the recorded snapshot before each conversation,
    the recorded frames after each step.  A step the loop builds differently from the
    one sent (another packet or entry) is an error, never a silent match."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        path = self.dir / "sweep.json.gz"
        try:
            self.doc = json.loads(gzip.decompress(path.read_bytes()))
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"{path}: not a sweep recording ({exc})") from None
        if not isinstance(self.doc, dict) or self.doc.get("format") != FORMAT:
            raise InputError(f"{path}: not a sweep recording (no '{FORMAT}' header)")
        self.snapshots: dict[str, Snapshot] = {}
        self.made: dict[int, int] = {}    # id(conversation handed out) -> its index
        self.index = -1
        self.step = 0

    @property
    def topology(self) -> str:
        return self.doc.get("topology", "?")

    def conversations(self) -> list[Conversation]:
        """The conversations as sent: every step's packet as recorded (replies included),
        in the recorded order."""
        out = []
        for n, conv in enumerate(self.doc["conversations"]):
            steps = [Step(s["name"], s["reply"], s["packet"], wire=s["wire"],
                          entry=_entry(s["entry"])) for s in conv["steps"]]
            first = next((_entry(s["entry"]) for s in conv["steps"] if not s["reply"]), None)
            back = next((_entry(s["entry"]) for s in conv["steps"] if s["reply"]), None)
            made = Conversation(tuple(PacketClass(c) for c in conv["classes"]), conv["label"],
                                first, steps, back)
            self.made[id(made)] = n
            out.append(made)
        return out

    def begin(self, conversation: Conversation) -> Snapshot:
        if id(conversation) not in self.made:
            raise InputError(f"{conversation.label!r} is not a conversation of this recording")
        self.index = self.made[id(conversation)]
        self.step = 0
        conv = self.doc["conversations"][self.index]
        digest = conv["snapshot"]
        if digest not in self.snapshots:
            self.snapshots[digest] = Snapshot.load(str(self.dir / f"snapshot-{digest}.ofr"))
        return self.snapshots[digest]

    def capture_points(self, snapshot: Snapshot) -> set[tuple[str, str]]:
        digest = self.doc["conversations"][self.index]["snapshot"]
        return {tuple(p) for p in self.doc["capture_points"][digest]}

    def send(self, entry: Entry, packet: dict, step: Step, expect: Expectation
             ) -> list[Capture]:
        conv = self.doc["conversations"][self.index]
        recorded = conv["steps"][self.step]
        self.step += 1
        if _entry(recorded["entry"]) != entry or recorded["packet"] != packet:
            raise InputError(f"replay of {conv['label']!r} step {self.step}: the packet "
                             "built differs from the one the recording sent")
        return [Capture(c, p, u, bytes.fromhex(f)) for c, p, u, f in recorded["captures"]]

    def connections(self) -> set[tuple] | None:
        found = self.doc["conversations"][self.index]["connections"]
        return {tuple(e) for e in found} if found is not None else None


def replay(directory: str | Path, progress=None, classes: set[str] | None = None
           ) -> VerifyReport:
    """The recorded sweep (or its conversations of ``classes``) compared again with what
    ofrace predicts now."""
    started = time.monotonic()
    side = ReplaySide(Path(directory))
    report = VerifyReport(side.topology)
    conversations = [c for c in side.conversations()
                     if not classes or {k.value for k in c.classes} & classes]
    run_sweep(side, conversations, report, progress)
    report.seconds = time.monotonic() - started
    return report
