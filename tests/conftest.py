"""Recorded lab data shared by the fast tests (see scripts/record_fixtures.py)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest

from ofrace.snapshot import Snapshot

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def recorded(topology: str) -> tuple[Snapshot, list[dict]]:
    snapshot = Snapshot.load(FIXTURES / topology / "snapshot.ofr")
    with gzip.open(FIXTURES / topology / "traces.json.gz", "rt") as fh:
        traces = json.load(fh)["traces"]
    return snapshot, traces


@pytest.fixture
def kind_snapshot() -> Snapshot:
    return recorded("kind")[0]
