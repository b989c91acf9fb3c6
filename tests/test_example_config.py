"""config.example.toml (used by ``make run``) loads, documents every key, has valid data."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from syncd.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.toml"


def tables_and_keys(model: type[BaseModel], table: str = "") -> list[tuple[str, str]]:
    """Every (table, key) the models accept, walking nested tables recursively."""
    found: list[tuple[str, str]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        nested = [
            arg
            for arg in (field.annotation, *typing.get_args(field.annotation))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if nested:
            found.extend(tables_and_keys(nested[0], key))
        else:
            found.append((table, key))
    return found


@pytest.fixture(scope="module")
def example() -> Config:
    """The example config as ``make run`` sees it (no systemd directories set)."""
    return load_config(EXAMPLE, environ={})


def test_example_covers_every_key_in_its_table() -> None:
    """Each key of each model appears (set or commented out) inside its own table."""
    text = EXAMPLE.read_text()
    # Split into table bodies: "[api]" -> text up to the next table header.
    bodies: dict[str, str] = {}
    for match in re.finditer(r"^\[\[?(\w+)\]\]?$(.*?)(?=^\[|\Z)", text, re.M | re.S):
        bodies[match.group(1)] = bodies.get(match.group(1), "") + match.group(2)
    missing = [
        f"{table}.{key}"
        for table, key in tables_and_keys(Config)
        if not re.search(rf"^#? ?{key} = ", bodies.get(table, ""), re.M)
    ]
    assert missing == []


def test_example_key_walk_sees_nested_tables() -> None:
    """The walk above reaches folder keys (so the coverage check means something)."""
    keys = tables_and_keys(Config)
    assert ("folders", "validate") in keys
    assert ("state", "embedded_data_dir") in keys
    assert len(keys) > 25


def test_example_runs_without_root(example: Config) -> None:
    """Embedded server and state under the repo's git-ignored var/: no root needed."""
    assert example.api.is_embedded
    assert example.state.database_path == REPO / "var" / "state.db"
    assert example.state.embedded_data_dir == REPO / "var" / "emulator"
    assert "/var/" in (REPO / ".gitignore").read_text().splitlines()
    assert example.warnings == ()


def test_example_folders_exist_and_hold_samples(example: Config) -> None:
    """Every folder resolves to an existing directory under example-data/ with a sample."""
    assert [folder.purpose for folder in example.folders][:2] == ["fine-tune", "batch"]
    for folder in example.folders:
        assert folder.path.is_dir(), folder.path
        assert folder.path.parent == REPO / "example-data"
        samples = [p for p in folder.path.iterdir() if any(p.match(g) for g in folder.include)]
        assert samples, f"no sample file in {folder.path}"


def test_fine_tune_sample_is_valid_chat_data() -> None:
    """Each fine-tune line is a conversation that ends with an assistant turn."""
    lines = (REPO / "example-data/fine-tune/sample-chat.jsonl").read_text().splitlines()
    assert len(lines) >= 3
    for line in lines:
        messages = json.loads(line)["messages"]
        roles = [message["role"] for message in messages]
        assert roles[-1] == "assistant"
        assert set(roles) <= {"system", "user", "assistant"}
        assert all(
            isinstance(message["content"], str) and message["content"] for message in messages
        )


def test_batch_sample_is_valid_batch_requests() -> None:
    """Each batch line has a unique custom_id and a body with messages."""
    lines = (REPO / "example-data/batch/sample-batch.jsonl").read_text().splitlines()
    requests = [json.loads(line) for line in lines]
    assert len({request["custom_id"] for request in requests}) == len(requests) >= 2
    for request in requests:
        assert request["body"]["messages"][-1]["role"] == "user"


def test_ocr_sample_is_a_pdf() -> None:
    """The ocr sample starts and ends like a PDF."""
    data = (REPO / "example-data/ocr/sample-page.pdf").read_bytes()
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF")


def test_production_template_talks_to_mistral_with_a_key_file(tmp_path: Path) -> None:
    """systemd/config.production.toml (the README's way to production) loads: Mistral's API, the key
    from a file, an absolute state path; check-config then only asks for the key file."""
    (tmp_path / "mistral-api-key").write_text("sk-template-test\n", encoding="utf-8")
    copy = tmp_path / "config.toml"
    copy.write_text((REPO / "systemd" / "config.production.toml").read_text(encoding="utf-8"))
    config = load_config(copy, environ={})
    assert config.api.server_url == "https://api.mistral.ai"
    assert config.api.api_key_file == tmp_path / "mistral-api-key"
    assert config.state.database_path == Path("/var/lib/syncd/state.db")
    assert [folder.purpose for folder in config.folders] == ["fine-tune"]
