"""Options every command shares, spelled once: where the snapshot comes from
(``--snapshot FILE`` / ``-i INVENTORY`` / ``--lab``) and ``--json``.

``--no-cache`` makes a live read read the databases whole (``database_cache``).
``snapshot_source`` turns the three into one ``SnapshotSource`` argument, so each
command obtains its snapshot the same way (``ofrace.collect.source``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from ofrace.collect import database_cache
from ofrace.collect.source import SnapshotSource
from ofrace.errors import InputError


def lab_inventory() -> Path:
    """The inventory the embedded lab wrote, or a one-line error if no lab is up."""
    from ofrace.lab.lab import default_dir

    path = default_dir() / "inventory.toml"
    if not path.is_file():
        raise InputError(f"no lab inventory at {path}: bring the lab up with "
                         "`ofrace lab up --topology kind`")
    return path


def snapshot_source(*, snapshot: str | None = "Use this snapshot file.",
                    inventory: str = "Read the cluster now from this inventory.",
                    lab: str = "Read the embedded lab now (its inventory.toml)."):
    """``--snapshot``, ``-i/--inventory`` and ``--lab`` as one ``source`` argument
    (``snapshot=None``: a command that reads live only)."""
    def decorate(command):
        @functools.wraps(command)
        def with_source(*args, snapshot_file=None, inventory_file=None, use_lab=False, **kw):
            if use_lab:
                if inventory_file:
                    raise InputError("give either --lab or --inventory, not both")
                inventory_file = lab_inventory()
            return command(*args, source=SnapshotSource(snapshot_file, inventory_file), **kw)

        with_source = click.option("--no-cache", **database_cache.NO_CACHE_OPTION)(with_source)
        with_source = click.option("--lab", "use_lab", is_flag=True, help=lab)(with_source)
        with_source = click.option("-i", "--inventory", "inventory_file",
                                   type=click.Path(dir_okay=False), help=inventory)(with_source)
        if snapshot is not None:
            with_source = click.option("--snapshot", "snapshot_file",
                                       type=click.Path(dir_okay=False), help=snapshot)(with_source)
        return with_source
    return decorate


def json_option(help: str = "Machine-readable output."):
    return click.option("--json", "as_json", is_flag=True, help=help)


def request_body_options(command):
    """``--dhcp TYPE``, ``--dhcpv6 TYPE``, ``--dns NAME[:TYPE]``: what the packet's body asks
    (messages ovn-controller answers); ``--probe BACKEND``: the health check ovn-controller
    sends; the command gets ``body``: (option, value) or None."""
    from ofrace.ovn.microflow import DHCP_REQUESTS, DHCPV6_REQUESTS

    @functools.wraps(command)
    def with_body(*args, dhcp_v4=None, dhcp_v6=None, dns_query=None, probe=None, **kw):
        given = [(name, value) for name, value in (("dhcp", dhcp_v4), ("dhcpv6", dhcp_v6),
                                                   ("dns", dns_query), ("probe", probe))
                 if value]
        if len(given) > 1:
            raise click.UsageError("--dhcp, --dhcpv6, --dns and --probe cannot be combined")
        return command(*args, body=given[0] if given else None, **kw)

    for option in (
            click.option("--probe", metavar="BACKEND_IP[:PORT]",
                         help="The load balancer health-check probe ovn-controller sends "
                              "to this backend (its SB Service_Monitor row)."),
            click.option("--dns", "dns_query", metavar="NAME[:TYPE]",
                         help="A DNS query for NAME (TYPE a, aaaa, any or ptr; default a) "
                              "in the UDP packet to port 53."),
            click.option("--dhcpv6", "dhcp_v6", type=click.Choice(DHCPV6_REQUESTS),
                         help="A DHCPv6 client message of this type; no --to."),
            click.option("--dhcp", "dhcp_v4", type=click.Choice(DHCP_REQUESTS),
                         help="A DHCP request of this type from --from (or the microflow's "
                              "inport); no --to.")):
        with_body = option(with_body)
    return with_body
