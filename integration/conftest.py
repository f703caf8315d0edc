"""Fixtures that run the tests against the real embedded OVN lab.

One :class:`LabSlot` per session holds the session's lab, brings a
topology up when a test first asks for it, and takes it down at the end of
the session.  (Labs of different directories run side by side -- see
ofrace.lab.placement and test_lab_coexist.py -- so a lab of your own may
stay up while the tests run.)  Tests ask with the ``kind_lab`` or
``basic_lab`` fixtures (cheap once the lab is up); a session- or
module-scoped fixture of your own can depend on ``lab_slot`` and call
``lab_slot.ensure("kind")``.  Tests are reordered so that all tests of one
topology run together.

The lab directory is ``$OFRACE_TEST_LAB_DIR`` or a pytest temporary
directory -- never the default ``ofrace lab`` directory, so a lab you keep
up for trying things out is left alone.
"""

from __future__ import annotations

import os

import pytest

from ofrace.lab.lab import Lab

TOPOLOGY_FIXTURES = {"kind_lab": "kind", "basic_lab": "basic", "acl_lab": "acl"}


class LabSlot:
    """The one lab of a test session, brought up on demand."""

    def __init__(self, lab_dir):
        self.lab = Lab(lab_dir)
        self.ups = 0

    def ensure(self, topology: str) -> Lab:
        """The lab, up with ``topology`` (brought up if it is down or another one is up)."""
        state = self.lab.state
        if state.get("status") != "up" or state.get("topology") != topology:
            self.up(topology)
        return self.lab

    def up(self, topology: str) -> Lab:
        """Bring ``topology`` up afresh, even if it is already up."""
        self.lab.up(topology)
        self.ups += 1
        return self.lab

    def close(self) -> None:
        """Take the lab down only if this session brought it up: a lab found up in
        ``$OFRACE_TEST_LAB_DIR`` and reused as it was is someone else's."""
        if self.ups and (self.lab.state.get("processes") or self.lab.state.get("namespaces")):
            self.lab.down()


@pytest.fixture(scope="session")
def lab_slot(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces, sshd): run them as root, "
                    "as CI does", pytrace=False)
    lab_dir = os.environ.get("OFRACE_TEST_LAB_DIR") or tmp_path_factory.mktemp("lab")
    slot = LabSlot(lab_dir)
    yield slot
    slot.close()


@pytest.fixture
def kind_lab(lab_slot) -> Lab:
    """The seed's 3-node ovn-kubernetes cluster, up."""
    return lab_slot.ensure("kind")


@pytest.fixture
def basic_lab(lab_slot) -> Lab:
    """Two chassis, one switch, one VIF on each, up."""
    return lab_slot.ensure("basic")


def pytest_collection_modifyitems(session, config, items):
    """Run the tests of each topology together, so the lab is switched at most once per topology."""
    order = list(TOPOLOGY_FIXTURES)

    def topology_rank(item) -> int:
        names = getattr(item, "fixturenames", ())
        for rank, fixture in enumerate(order):
            if fixture in names:
                return rank
        return -1  # tests that need no lab first

    items.sort(key=topology_rank)  # stable: file order within a topology
