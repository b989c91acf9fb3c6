"""The client examples of docs/commands.md (once the README's), verbatim, run against the emulator.

The strings below are exactly those code blocks; if one stops working, this fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.emulator import EmulatorServer

UPLOAD = """\
from syncd.api import Mistral

# The key comes from MISTRAL_API_KEY, the server from MISTRAL_SERVER_URL (default
# https://api.mistral.ai); both can be passed: Mistral(api_key=..., server_url=...).
with Mistral() as client:
    uploaded = client.files.upload(file="train.jsonl", purpose="fine-tune")
    print(uploaded.id, uploaded.bytes, uploaded.sample_type, uploaded.num_lines)
"""

INPUT_FORMS = """\
from pathlib import Path

from syncd.api import Mistral

with Mistral() as client:
    # A path (str or Path) streams from disk; so does an open binary file.
    with open("train.jsonl", "rb") as handle:
        client.files.upload(file=handle, purpose="fine-tune")
    # Bytes need a name; the SDK-style dict may also set the part's content type.
    data = Path("train.jsonl").read_bytes()
    client.files.upload(file=data, filename="copy.jsonl", purpose="fine-tune")
    client.files.upload(
        file={"file_name": "typed.jsonl", "content": data, "content_type": "application/jsonl"},
        purpose="fine-tune",
    )
"""

LIST = """\
from syncd.api import Mistral

with Mistral() as client:
    page = client.files.list(page=0, page_size=20, purpose="fine-tune", search="train")
    print(page.total, [info.filename for info in page.data])
    for info in client.files.iter_all(purpose="fine-tune"):  # every page
        print(info.id, info.filename, info.created.isoformat())
"""

ONE_FILE = """\
from syncd.api import Mistral

with Mistral() as client:
    file_id = client.files.list(search="train.jsonl").data[0].id
    print(client.files.retrieve(file_id).deleted)
    client.files.download_to(file_id, "copy-of-train.jsonl")  # temporary file, then rename
    with client.files.download(file_id) as response:  # or stream it yourself
        content = b"".join(response.iter_bytes())
    signed = client.files.get_signed_url(file_id, expiry=1)  # hours, 1 to 168
    print(signed.url, signed.expires_at)
    client.files.delete(file_id)
"""

ERRORS = """\
from syncd.api import Mistral
from syncd.errors import ApiError, InvalidRequestError, UsageError

with Mistral(max_retries=2) as client:  # 429, 5xx and dropped connections are retried
    try:
        client.files.upload(file="broken.jsonl", purpose="fine-tune")
    except InvalidRequestError as exc:  # 400/422: the server rejected the content
        for problem in exc.errors:
            print(problem["line_number"], problem["message"])
    except UsageError as exc:  # refused before sending: over 512 MB, or not .jsonl
        print(exc)
    except ApiError as exc:  # any other API failure, once retries are spent
        print(exc)
"""

TRAIN = (
    b'{"messages": [{"role": "user", "content": "hi"}, '
    b'{"role": "assistant", "content": "hello"}]}\n'
) * 2


def run_example(code: str, name: str) -> None:
    """Run one README example as a script would (its own globals)."""
    # The examples are this file's own constants, not outside input.
    exec(compile(code, f"<README {name}>", "exec"), {"__name__": "__main__"})  # noqa: S102


@pytest.fixture
def workdir(
    emulator: EmulatorServer, api_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A working directory with train.jsonl and broken.jsonl; env points at the emulator."""
    monkeypatch.setenv("MISTRAL_API_KEY", api_key)
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_bytes(TRAIN)
    (tmp_path / "broken.jsonl").write_bytes(b'{"messages": []}\nnot json\n')
    return tmp_path


def test_upload_example(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The upload example uploads train.jsonl and prints id, size, sample type and lines."""
    run_example(UPLOAD, "upload")
    printed = capsys.readouterr().out.split()
    assert printed[1:] == [str(len(TRAIN)), "instruct", "2"]


def test_input_forms_example(workdir: Path, emulator: EmulatorServer) -> None:
    """The input-forms example uploads three files."""
    run_example(INPUT_FORMS, "input forms")
    assert emulator.stats()["files"] == 3


def test_list_example(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The list example prints the page's total and names, then every file."""
    run_example(UPLOAD, "upload")
    capsys.readouterr()
    run_example(LIST, "list")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1 ['train.jsonl']"
    assert lines[1].split()[1] == "train.jsonl"


def test_one_file_example(
    workdir: Path, emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The single-file example retrieves, downloads, signs and deletes."""
    run_example(UPLOAD, "upload")
    capsys.readouterr()
    run_example(ONE_FILE, "one file")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "False"
    assert lines[1].startswith("http")
    assert (workdir / "copy-of-train.jsonl").read_bytes() == TRAIN
    assert emulator.stats()["files"] == 0


def test_errors_example(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The errors example prints the server's line-numbered problems."""
    run_example(ERRORS, "errors")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"]
    assert "invalid json" in lines[1]
