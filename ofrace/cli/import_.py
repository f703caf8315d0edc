"""``ofrace import``: a snapshot from sosreports, must-gathers and raw OVSDB files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ofrace.cli.options import json_option
from ofrace.collect.importer import import_snapshot
from ofrace.collect.source import collected_exit_code, save_snapshot
from ofrace.openflow.bridge import classifier_index
from ofrace.render.import_summary import print_import


@click.command(name="import")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Snapshot file to write.")
@json_option("Print the summary as JSON.")
def import_(paths, output, as_json):
    """Build a snapshot from sosreports (directories or .tar.xz/.tar.gz/.zip: node
    ones with the openvswitch/ovn_host plugins, a DB host's with ovn_central),
    OpenShift network must-gathers (each node's zone NB/SB, from
    ovnk_database_store.tar.gz) and raw OVSDB files (ovnnb_db.db, ovnsb_db.db,
    ovn_ic_sb_db.db; standalone or clustered).

    Exits 0 when everything a collect reads was found, 1 when the snapshot is
    partial (the summary says what is missing and what that prevents), 2 on bad
    input.
    """
    snapshot, report = import_snapshot(list(paths))
    save_snapshot(snapshot, output, flow_index=classifier_index)
    print_import(snapshot, report, Path(output), as_json)
    sys.exit(collected_exit_code(snapshot))
