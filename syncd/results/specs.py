"""Which folders bring results back, and how: a plain value per folder, rebuilt on reload."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from syncd.config import Config
from syncd.folder_specs import folder_spec

__all__ = ["ResultsSpec", "folder_tag", "results_specs"]


@dataclass(frozen=True, slots=True)
class ResultsSpec:
    """One folder whose results come home."""

    key: str
    """The folder's key in the state store."""
    name: str
    root: Path
    results: Path
    kind: str
    """``batch`` or ``ocr``."""
    mode: str
    """``submit`` or ``wait`` (batch), ``ocr``."""
    model: str | None
    endpoint: str | None
    max_per_hour: int

    @property
    def tag(self) -> str:
        return folder_tag(self.key)


def folder_tag(key: str) -> str:
    """The folder as jobs' metadata names it (a digest: the key may be a long path)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def results_specs(config: Config) -> dict[str, ResultsSpec]:
    """The configured folders with a ``results`` folder, keyed by their store key."""
    found: dict[str, ResultsSpec] = {}
    for folder in config.folders:
        if folder.results is None:
            continue
        key = folder_spec(folder, config.node.name).key
        model: str | None
        if folder.purpose == "ocr":
            mode, model = "ocr", folder.ocr_model
        else:
            mode, model = folder.batch_jobs, folder.batch_model
        found[key] = ResultsSpec(
            key=key,
            name=folder.name,
            root=folder.path,
            results=folder.results,
            kind="ocr" if folder.purpose == "ocr" else "batch",
            mode=mode,
            model=model,
            endpoint=folder.batch_endpoint,
            max_per_hour=folder.max_jobs_per_hour,
        )
    return found
