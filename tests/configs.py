"""Writing real TOML configs for tests: folders in a tmp dir, the emulator as the server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FolderSetup:
    path: Path
    purpose: str = "fine-tune"
    extra: dict[str, str] = field(default_factory=dict)
    """Additional folder keys as raw TOML values, e.g. {"on_change": '"keep"'}."""


def write_config(
    directory: Path,
    *,
    server_url: str,
    folders: list[FolderSetup],
    sections: dict[str, dict[str, str]] | None = None,
) -> Path:
    """Write ``directory/config.toml``; ``sections`` adds raw TOML values per table."""
    tables: dict[str, dict[str, str]] = {
        "api": {"server_url": f'"{server_url}"', "max_attempts": "6", "concurrency": "4"},
        "state": {"url": f'"sqlite:///{directory / "state" / "state.db"}"'},
        "watch": {"settle": '"200ms"', "rescan_interval": '"1h"'},
        "log": {"format": '"json"', "level": '"info"'},
    }
    for name, values in (sections or {}).items():
        tables.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
        lines.append("")
    for folder in folders:
        folder.path.mkdir(parents=True, exist_ok=True)
        lines.append("[[folders]]")
        lines.append(f'path = "{folder.path}"')
        lines.append(f'purpose = "{folder.purpose}"')
        lines.extend(f"{key} = {value}" for key, value in folder.extra.items())
        lines.append("")
    path = directory / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def chat_line(question: str, answer: str) -> str:
    """One valid fine-tune chat record as a JSONL line."""
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        }
    )


def write_chat_file(path: Path, n: int = 3, *, salt: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [chat_line(f"question {i} {salt}", f"answer {i} {salt}") for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_batch_file(path: Path, n: int = 3, *, salt: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "custom_id": f"{salt}{i}",
                "body": {"messages": [{"role": "user", "content": f"q{i}{salt}"}], "max_tokens": 8},
            }
        )
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
