"""``syncd nodes``: every syncd that heartbeats into this state store, alive or stale.

Reads only the store. A node is stale when its last heartbeat is older than this config's
``[node] lease`` by the database's clock: it is stopped, hung or cut off, and the other nodes
syncing its folders take over its uploads in flight.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from syncd.cli.context import fail, load_config_or_exit, open_store_or_exit
from syncd.cli.output import porcelain_option, record, wants_porcelain
from syncd.config.durations import format_duration
from syncd.documents import node_json
from syncd.errors import StoreError
from syncd.fleet_runtime import database_now
from syncd.folder_specs import folder_specs
from syncd.paths import printable_key
from syncd.store import repo

__all__ = ["nodes"]


def _ago(seconds: float) -> str:
    return f"{format_duration(timedelta(seconds=round(seconds)))} ago"


@click.command("nodes")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@porcelain_option(
    "node, state, version, seconds since seen, folders, queue, seconds oldest unsynced, problems"
)
@click.pass_context
def nodes(ctx: click.Context, as_json: bool, porcelain: bool | None) -> None:
    """Every node in the state store: alive or stale, version, last heartbeat, folders, queue
    depth, oldest file not synced yet, and what it reports as wrong."""
    config = load_config_or_exit(ctx, log=False)
    store = open_store_or_exit(config)
    names = {key: spec.name for key, spec in folder_specs(config).items()}
    try:
        with store.session() as s:
            now = database_now(s)
            records = repo.list_nodes(s)
            oldest = repo.oldest_unsynced_by_folder(s, {key for n in records for key in n.folders})
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    lease = config.node.lease
    listed = [
        node_json(
            node, now=now, lease=lease, this_node=config.node.name, names=names, oldest=oldest
        )
        for node in records
    ]
    if as_json:
        document = {
            "now": now.isoformat(),
            "lease_s": lease.total_seconds(),
            "this_node": config.node.name,
            "nodes": listed,
        }
        click.echo(json.dumps(document, indent=2))
        return
    if wants_porcelain(porcelain):
        for node in listed:
            joined = ",".join(
                f["name"] if f["name"] is not None else f["key"] for f in node["folders"]
            )
            oldest_age = node["oldest_unsynced_age_s"]
            click.echo(
                record(
                    node["name"],
                    node["state"],
                    node["version"],
                    round(node["last_seen_age_s"]),
                    joined,
                    node["queue_depth"],
                    None if oldest_age is None else round(oldest_age),
                    "; ".join(node["problems"]),
                )
            )
        return
    console = Console()
    if not listed:
        console.print(
            "No node has heartbeated into this state store yet: `syncd run` records its node "
            f"every [node] heartbeat ({format_duration(config.node.heartbeat)})."
        )
        return
    table = Table(title=f"Nodes (stale: silent for over {format_duration(lease)})")
    for column in ("node", "state", "version", "last seen", "folders", "queue", "oldest unsynced"):
        table.add_column(
            column,
            justify="right" if column == "queue" else "left",
            overflow="fold" if column == "folders" else "ellipsis",
        )
    table.add_column("problems", overflow="fold")
    for node in listed:
        # Text, not markup: names and problems come from the store and may hold "[...]".
        label = Text(node["name"])
        if node["this_node"]:
            label.append(" (this node)", style="dim")
        folders = [
            f["name"] if f["name"] is not None else printable_key(f["key"]) for f in node["folders"]
        ]
        oldest_age = node["oldest_unsynced_age_s"]
        table.add_row(
            label,
            Text(node["state"], style="green" if node["state"] == "alive" else "red"),
            Text(node["version"]),
            _ago(node["last_seen_age_s"]),
            Text("\n".join(folders)),
            str(node["queue_depth"]),
            "" if oldest_age is None else _ago(oldest_age),
            Text("\n".join(printable_key(p) for p in node["problems"])),
        )
    console.print(table)
    sys.stdout.flush()
