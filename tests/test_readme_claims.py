"""What the README's first screens show a newcomer holds: its valid fine-tune line is taken,
its refused one is refused with the very message it quotes (issue 22)."""

from __future__ import annotations

import re
from pathlib import Path

from syncd.validation import validate_file

README = Path(__file__).resolve().parent.parent / "README.md"

_EXAMPLES = re.compile(
    r"this line is valid:\s*```json\n(?P<valid>.+?)\n```\s*"
    r"and this one is refused \(`(?P<message>[^`]+)`\):\s*```json\n(?P<refused>.+?)\n```",
    re.DOTALL,
)


def _judge(tmp_path: Path, name: str, line: str) -> tuple[bool, tuple[str, ...]]:
    path = tmp_path / name
    path.write_text(line + "\n", encoding="utf-8")
    result = validate_file(path, purpose="fine-tune", mode="strict", size=path.stat().st_size)
    return result.ok, result.errors


def test_the_readmes_fine_tune_lines_are_judged_as_it_says(tmp_path: Path) -> None:
    found = _EXAMPLES.search(README.read_text(encoding="utf-8"))
    assert found is not None, "the README's valid and refused fine-tune lines moved"
    assert _judge(tmp_path, "valid.jsonl", found["valid"]) == (True, ())
    assert _judge(tmp_path, "refused.jsonl", found["refused"]) == (False, (found["message"],))
