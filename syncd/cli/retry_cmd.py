"""``syncd retry``: give failed files a fresh series of attempts and have quarantined files
judged again, on demand (e.g. after fixing the key, the config or the API's complaint)."""

from __future__ import annotations

import click

from syncd.cli.context import fail, load_config_or_exit, open_store_or_exit
from syncd.errors import StoreError
from syncd.folder_specs import adopt_legacy_keys, folder_specs
from syncd.store import repo

__all__ = ["retry"]


@click.command("retry")
@click.option(
    "--only",
    type=click.Choice(["failed", "quarantined"]),
    default=None,
    help="Only failed files (uploads that gave up) or only quarantined ones (refused content).",
)
@click.option(
    "--folder",
    "folder_names",
    multiple=True,
    metavar="NAME",
    help="Only this folder (its name in the config); repeatable. Default: every folder.",
)
@click.pass_context
def retry(ctx: click.Context, only: str | None, folder_names: tuple[str, ...]) -> None:
    """Requeue failed files and have quarantined files judged again.

    Failed files are queued for upload with a fresh series of attempts. Quarantined files are
    read and validated again under the current config at the next scan, and uploaded if they
    now pass. `syncd sync` does both at once; a running daemon at its next rescan.
    """
    config = load_config_or_exit(ctx, log=False)
    specs = folder_specs(config)
    keys = {key: spec.name for key, spec in specs.items()}
    unknown = sorted(set(folder_names) - set(keys.values()))
    if unknown:
        known = ", ".join(sorted(keys.values()))
        fail(f"no folder named {', '.join(unknown)} in the config (folders: {known})", 2)
    chosen = [key for key, name in keys.items() if not folder_names or name in folder_names]
    store = open_store_or_exit(config)
    try:
        adopt_legacy_keys(store, specs)
        with store.session() as s:
            failed = 0 if only == "quarantined" else repo.retry_failed(s, folders=chosen)
            quarantined = 0 if only == "failed" else repo.rejudge_quarantined(s, chosen)
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    click.echo(f"{failed} failed file(s) queued for upload")
    click.echo(f"{quarantined} quarantined file(s) to be judged again at the next scan")
    if failed or quarantined:
        click.echo("`syncd sync` takes them now; a running daemon at its next rescan")
