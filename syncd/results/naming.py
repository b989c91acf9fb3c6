"""Where an input's results land: the results folder mirrors the input folder's tree.

``eu/q3.jsonl`` (batch) gives ``eu/q3.output.jsonl`` and ``eu/q3.errors.jsonl``;
``a/contract.pdf`` (OCR) gives ``a/contract.md`` and ``a/contract.ocr.json``. Two inputs that
differ only by their extension (``contract.pdf`` and ``contract.png``) would share those names:
the second one keeps its extension (``contract.png.md``). A result that must not replace a file
a person edited lands beside it with the job's key in its name (``q3.output.<key8>.jsonl``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["beside_name", "result_names"]


def result_names(kind: str, rel_path: str, *, keep_extension: bool = False) -> tuple[str, str]:
    """(the main result, the second one): output and errors, or Markdown and raw JSON."""
    path = PurePosixPath(rel_path)
    stem = path.name if keep_extension else path.stem
    parent = path.parent
    if kind == "batch":
        names = (f"{stem}.output.jsonl", f"{stem}.errors.jsonl")
    else:
        names = (f"{stem}.md", f"{stem}.ocr.json")
    return str(parent / names[0]), str(parent / names[1])


def beside_name(rel_path: str, job_key: str) -> str:
    """``eu/q3.output.jsonl`` -> ``eu/q3.output.<first 8 of the key>.jsonl``."""
    path = PurePosixPath(rel_path)
    return str(path.with_name(f"{path.stem}.{job_key[:8]}{path.suffix}"))
