"""One watched folder as the pipeline, the uploader, the store and the commands see it.

Apart from the pipeline on purpose: ``syncd status`` needs a folder's store key, not the code
that scans it (and the state store's whole ORM behind that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syncd.paths import IgnoreRules
from syncd.validation import ValidationMode

__all__ = ["FolderSpec"]


@dataclass(frozen=True, slots=True)
class FolderSpec:
    """What the pipeline and uploader need to know about one watched folder."""

    name: str
    root: Path
    purpose: str
    rules: IgnoreRules
    validate: ValidationMode = "strict"
    on_change: str = "replace"
    batch_endpoint: str | None = None
    """Batch folders: the endpoint their jobs run, which bodies are checked against."""
    node: str = ""
    """The node this folder belongs to; empty: the store's keys of a single host (by path)."""
    shared_id: str | None = None
    """A shared folder's ``id``: the same rows for every node that mounts it."""

    @property
    def key(self) -> str:
        """The folder's identity in the state store.

        ``shared:<id>`` for a shared folder (whatever its mount path on each node),
        ``<node>:<absolute path>`` for a node's own folder (two hosts with the same path keep
        apart), the bare path without a node (single-host stores before fleet mode).
        """
        if self.shared_id is not None:
            return f"shared:{self.shared_id}"
        return f"{self.node}:{self.root}" if self.node else str(self.root)

    @property
    def judging_settings(self) -> str:
        """What a verdict on a file's content depends on: purpose, mode, batch endpoint."""
        return f"{self.purpose}|{self.validate}|{self.batch_endpoint or ''}"

    @property
    def legacy_key(self) -> str:
        """The key of this folder's rows in stores written before fleet mode: its path."""
        return str(self.root)
