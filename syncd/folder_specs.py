"""Configured folders as the pipeline, the store and the commands see them, keyed by their
store identity. Light on purpose: ``syncd status`` and ``retry`` need the keys, not the engine.
"""

from __future__ import annotations

from syncd.config import Config, FolderConfig
from syncd.folder_spec import FolderSpec
from syncd.logs import get_logger
from syncd.paths import IgnoreRules
from syncd.store import Store, folder_rows

__all__ = ["adopt_legacy_keys", "folder_spec", "folder_specs"]

log = get_logger(__name__)


def folder_spec(folder: FolderConfig, node: str) -> FolderSpec:
    return FolderSpec(
        name=folder.name,
        root=folder.path,
        purpose=folder.purpose,
        rules=IgnoreRules(folder.include, folder.exclude),
        validate=folder.validation,
        on_change=folder.on_change,
        batch_endpoint=folder.batch_endpoint,
        node=node,
        shared_id=folder.id if folder.shared else None,
    )


def adopt_legacy_keys(store: Store, specs: dict[str, FolderSpec]) -> int:
    """Re-key the rows of stores written before fleet mode (keyed by path) to ``specs``' keys;
    returns how many local rows moved (0 once done)."""
    with store.connection() as c:
        moved = folder_rows.adopt_legacy_folder_keys(
            c, {spec.legacy_key: spec.key for spec in specs.values()}
        )
    if moved:
        log.info("folder_rows_rekeyed", rows=moved, folders=[s.name for s in specs.values()])
    return moved


def folder_specs(config: Config) -> dict[str, FolderSpec]:
    """Configured folders keyed by their store identity (``<node>:<path>`` or ``shared:<id>``)."""
    specs = (folder_spec(f, config.node.name) for f in config.folders)
    return {spec.key: spec for spec in specs}
