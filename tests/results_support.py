"""Helpers for the results tests: folders with a results folder, the emulator's jobs, the store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from syncd.api import Mistral
from syncd.api.job_models import BatchJob
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_config

EXAMPLE_PDF = Path(__file__).resolve().parent.parent / "example-data" / "ocr" / "sample-page.pdf"


def results_config(
    tmp_path: Path,
    emulator: EmulatorServer,
    *,
    batch: dict[str, str] | None = None,
    ocr: dict[str, str] | None = None,
    sections: dict[str, dict[str, str]] | None = None,
) -> Path:
    """A config with a batch folder ``in/batch`` (results ``out/batch``) and, with ``ocr``,
    an OCR folder ``in/ocr`` (results ``out/ocr``); ``batch``/``ocr`` add folder keys."""
    folders = [
        FolderSetup(
            tmp_path / "in" / "batch",
            "batch",
            {
                "results": f'"{tmp_path / "out" / "batch"}"',
                "batch_endpoint": '"/v1/chat/completions"',
                **(batch or {}),
            },
        )
    ]
    if ocr is not None:
        folders.append(
            FolderSetup(
                tmp_path / "in" / "ocr", "ocr", {"results": f'"{tmp_path / "out" / "ocr"}"', **ocr}
            )
        )
    merged = {"results": {"poll_interval": '"200ms"', "poll_interval_max": '"1s"'}}
    for name, values in (sections or {}).items():
        merged.setdefault(name, {}).update(values)
    return write_config(tmp_path, server_url=emulator.url, folders=folders, sections=merged)


SUBMIT = {"batch_jobs": '"submit"', "batch_model": '"mistral-small-latest"'}


def remote_jobs(emulator: EmulatorServer, api_key: str) -> list[BatchJob]:
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        return list(client.batch.jobs.iter_all())


def set_faults(emulator: EmulatorServer, api_key: str, **changes: Any) -> None:
    answer = httpx.post(
        emulator.url + "/_emulator/faults",
        headers={"Authorization": f"Bearer {api_key}"},
        json=changes,
    )
    answer.raise_for_status()


def emulator_requests(emulator: EmulatorServer, api_key: str) -> int:
    answer = httpx.get(
        emulator.url + "/_emulator/stats", headers={"Authorization": f"Bearer {api_key}"}
    )
    return int(answer.json()["requests"])


def store_rows(tmp_path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        return db.execute(query).fetchall()


def audit_actions(tmp_path: Path) -> list[str]:
    return [row[0] for row in store_rows(tmp_path, "select action from audit order by id")]


def custom_ids_of(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines() if line]
