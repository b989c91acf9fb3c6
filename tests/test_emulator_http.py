"""The emulator's HTTP contract for a plain client: auth, ids, signing, dedupe, names, restarts."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from syncd.emulator import EmulatorServer
from syncd.emulator.signing import SECRET_FILE_NAME, UrlSigner, load_or_create_secret

CHAT = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n'

Make = Callable[..., EmulatorServer]


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def upload(
    server: EmulatorServer,
    api_key: str,
    name: str = "a.jsonl",
    content: bytes = CHAT,
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/files",
        headers=auth(api_key),
        files={"file": (name, content)},
        data=fields or {},
    )


def test_missing_authorization_is_401_even_without_a_key(make_emulator: Make) -> None:
    """With no key configured any bearer token works, but no header at all is 401."""
    server = make_emulator(api_key=None)
    assert httpx.get(server.url + "/v1/files").status_code == 401
    response = httpx.get(server.url + "/v1/files", headers=auth("anything"))
    assert response.status_code == 200
    assert response.json() == {"data": [], "object": "list", "total": 0}


def test_stats_need_the_key(emulator: EmulatorServer, api_key: str) -> None:
    """GET /_emulator/stats is 401 without the key and counts requests with it."""
    assert httpx.get(emulator.url + "/_emulator/stats").status_code == 401
    upload(emulator, api_key)
    httpx.get(emulator.url + "/v1/files", headers=auth("wrong"))
    stats = httpx.get(emulator.url + "/_emulator/stats", headers=auth(api_key)).json()
    assert stats["uploads"] == 1
    assert stats["files"] == 1
    assert stats["requests"] == 2
    assert stats["faults"] == 0
    assert stats == emulator.stats()


@pytest.mark.parametrize("file_id", ["not-a-uuid", "x/y z", "00000000-0000-4000-8000-00000000000"])
def test_non_uuid_ids_are_404(emulator: EmulatorServer, api_key: str, file_id: str) -> None:
    """Ids that are not UUIDs name no file: 404 with a JSON detail on every route."""
    for suffix in ("", "/content", "/url"):
        response = httpx.get(f"{emulator.url}/v1/files/{file_id}{suffix}", headers=auth(api_key))
        assert response.status_code == 404
        assert "detail" in response.json()


def test_deleted_file_is_gone_everywhere(emulator: EmulatorServer, api_key: str) -> None:
    """After delete, retrieve, download, signed URL and a second delete are all 404."""
    file_id = upload(emulator, api_key).json()["id"]
    base = f"{emulator.url}/v1/files/{file_id}"
    signed_url = httpx.get(base + "/url", headers=auth(api_key)).json()["url"]
    assert httpx.delete(base, headers=auth(api_key)).json() == {
        "id": file_id,
        "object": "file",
        "deleted": True,
    }
    for response in (
        httpx.get(base, headers=auth(api_key)),
        httpx.get(base + "/content", headers=auth(api_key)),
        httpx.delete(base, headers=auth(api_key)),
        httpx.get(signed_url),
    ):
        assert response.status_code == 404
    assert not any((emulator.data_dir / "blobs").iterdir())


def test_signed_url_rejects_tampering_and_expiry(emulator: EmulatorServer, api_key: str) -> None:
    """A signed URL with an altered id, expiry or signature, or past its expiry, is 403."""
    first = upload(emulator, api_key, "one.jsonl").json()["id"]
    second = upload(emulator, api_key, "two.jsonl", CHAT + CHAT).json()["id"]
    url = httpx.get(f"{emulator.url}/v1/files/{first}/url?expiry=1", headers=auth(api_key)).json()
    parts = urlsplit(url["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert int(query["exp"]) == url["expires_at"]
    assert httpx.get(url["url"]).content == CHAT
    signed_base = f"{emulator.url}/_emulator/signed"
    # A different last hex digit (a fixed "0" would equal the real one time in sixteen).
    flipped = "1" if query["sig"].endswith("0") else "0"
    tampered = [
        f"{signed_base}/{second}?exp={query['exp']}&sig={query['sig']}",
        f"{signed_base}/{first}?exp={int(query['exp']) + 3600}&sig={query['sig']}",
        f"{signed_base}/{first}?exp={query['exp']}&sig={query['sig'][:-1]}{flipped}",
        f"{signed_base}/{first}?exp={query['exp']}",
    ]
    for bad in tampered:
        assert httpx.get(bad).status_code == 403, bad
    signer = UrlSigner(load_or_create_secret(emulator.data_dir))
    past = int(time.time()) - 1
    expired = f"{signed_base}/{first}?exp={past}&sig={signer.sign(first, past)}"
    assert httpx.get(expired).status_code == 403


def test_signing_secret_is_private(emulator: EmulatorServer) -> None:
    """The per-data-dir signing secret is stored with mode 0600."""
    assert (emulator.data_dir / SECRET_FILE_NAME).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("expiry", ["0", "169", "soon"])
def test_signed_url_expiry_out_of_range_is_422(
    emulator: EmulatorServer, api_key: str, expiry: str
) -> None:
    """Signed-URL expiry must be an integer number of hours in 1..168."""
    file_id = upload(emulator, api_key).json()["id"]
    response = httpx.get(
        f"{emulator.url}/v1/files/{file_id}/url", params={"expiry": expiry}, headers=auth(api_key)
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "expiry"]


def test_dedupe_returns_the_existing_file(emulator: EmulatorServer, api_key: str) -> None:
    """Same name and content gives the same id; a different name or content a new one."""
    first = upload(emulator, api_key).json()
    assert upload(emulator, api_key).json() == first
    assert upload(emulator, api_key, "b.jsonl").json()["id"] != first["id"]
    assert upload(emulator, api_key, content=CHAT + CHAT).json()["id"] != first["id"]
    assert emulator.stats()["dedupe_hits"] == 1
    assert emulator.stats()["files"] == 3


def test_no_dedupe_stores_every_upload(make_emulator: Make, api_key: str) -> None:
    """With dedupe off, identical uploads become distinct files."""
    server = make_emulator(dedupe=False)
    ids = {upload(server, api_key).json()["id"] for _ in range(3)}
    assert len(ids) == 3
    assert server.stats()["files"] == 3


@pytest.mark.parametrize(
    "name", ["données-日本語-😀.jsonl", "../../etc/passwd.jsonl", "/abs/path.jsonl", "a\\b.jsonl"]
)
def test_any_filename_is_kept_and_stays_inside_data_dir(
    emulator: EmulatorServer, api_key: str, name: str
) -> None:
    """Unicode and path-like names round-trip as metadata; content is stored only by id."""
    data_dir = emulator.data_dir
    # "../../x" from the blob folder would land in the session's temp root: watch it.
    outside = data_dir.parent
    before = set(outside.iterdir())
    created = upload(emulator, api_key, name)
    assert created.status_code == 200, created.text
    file_id = created.json()["id"]
    assert created.json()["filename"] == name
    fetched = httpx.get(f"{emulator.url}/v1/files/{file_id}", headers=auth(api_key)).json()
    assert fetched["filename"] == name
    written = {p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_file()}
    assert {w for w in written if not w.startswith("emulator.")} == {
        f"blobs/{file_id}",
        "signing.key",
    }
    assert set(outside.iterdir()) == before
    assert not Path("/abs/path.jsonl").exists()
    content = httpx.get(f"{emulator.url}/v1/files/{file_id}/content", headers=auth(api_key))
    assert content.content == CHAT


def test_files_survive_a_restart(make_emulator: Make, api_key: str, tmp_path: Path) -> None:
    """Files and deletes persist in the data dir across a stop and a new server."""
    data_dir = tmp_path / "persist"
    first = make_emulator(data_dir=data_dir)
    kept = upload(first, api_key, "kept.jsonl").json()
    removed = upload(first, api_key, "removed.jsonl").json()
    httpx.delete(f"{first.url}/v1/files/{removed['id']}", headers=auth(api_key))
    first.stop()
    second = make_emulator(data_dir=data_dir)
    listed = httpx.get(second.url + "/v1/files", headers=auth(api_key)).json()
    assert listed["data"] == [kept]
    content = httpx.get(f"{second.url}/v1/files/{kept['id']}/content", headers=auth(api_key))
    assert content.content == CHAT
    # Dedupe remembers the old file too.
    assert upload(second, api_key, "kept.jsonl").json()["id"] == kept["id"]


def test_unchecked_purposes_skip_jsonl_checks(emulator: EmulatorServer, api_key: str) -> None:
    """Purposes without content rules (ocr, agentic_safety) are stored without JSONL checks."""
    ocr = upload(
        emulator, api_key, "scan.pdf", b"%PDF-1.4 binary \xff", fields={"purpose": "ocr"}
    ).json()
    assert (ocr["purpose"], ocr["sample_type"], ocr["mimetype"]) == (
        "ocr",
        "ocr_input",
        "application/pdf",
    )
    assert ocr["num_lines"] is None
    odd = upload(
        emulator, api_key, "clip", b"\x00\x01", fields={"purpose": "agentic_safety"}
    ).json()
    assert odd["purpose"] == "agentic_safety"
    assert odd["mimetype"] == "application/octet-stream"


def test_fine_tune_needs_jsonl_name(emulator: EmulatorServer, api_key: str) -> None:
    """A fine-tune upload whose name is not .jsonl is 422 even with valid content."""
    response = upload(emulator, api_key, "train.json", fields={"purpose": "fine-tune"})
    assert response.status_code == 422
    assert ".jsonl" in response.json()["errors"][0]["message"]


def test_non_utf8_is_422_decode_error(emulator: EmulatorServer, api_key: str) -> None:
    """Content that is not UTF-8 gets the API's decode error."""
    response = upload(emulator, api_key, "latin.jsonl", '{"text":"café"}\n'.encode("latin-1"))
    assert response.status_code == 422
    assert response.json() == {
        "detail": "Failed to decode data, please encode your file using UTF-8."
    }


def test_batch_lines_need_a_body(emulator: EmulatorServer, api_key: str) -> None:
    """Batch files are rejected line by line where the body is missing; a missing custom_id
    is only a warning locally (Mistral's spec makes it optional), so the server takes it."""
    content = b'{"custom_id":"1","body":{}}\n{"body":{}}\n{"custom_id":"3"}\n'
    response = upload(emulator, api_key, "b.jsonl", content, fields={"purpose": "batch"})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["line_number"], e["message"]) for e in errors] == [(3, 'missing "body"')]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [({"visibility": "everyone"}, "visibility"), ({"expiry": "tomorrow"}, "expiry")],
)
def test_bad_form_fields_are_422(
    emulator: EmulatorServer, api_key: str, fields: dict[str, str], loc: str
) -> None:
    """Unknown visibility and non-integer expiry are FastAPI-style 422s naming the field."""
    response = upload(emulator, api_key, fields=fields)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", loc]
    assert emulator.stats()["files"] == 0


def test_malformed_uploads_are_422(emulator: EmulatorServer, api_key: str) -> None:
    """Non-multipart bodies, a missing file part and a truncated body are 422."""
    url = emulator.url + "/v1/files"
    not_multipart = httpx.post(url, headers=auth(api_key), json={"file": "x"})
    assert not_multipart.status_code == 422
    no_file = httpx.post(url, headers=auth(api_key), files={"purpose": (None, "fine-tune")})
    assert no_file.status_code == 422
    assert no_file.json()["detail"][0]["type"] == "missing"
    truncated = httpx.post(
        url,
        headers={**auth(api_key), "content-type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        + CHAT,
    )
    assert truncated.status_code == 422
    assert not any((emulator.data_dir / "tmp").iterdir())


@pytest.mark.parametrize(
    "query",
    [{"page": "-1"}, {"page_size": "0"}, {"page_size": "many"}, {"include_total": "maybe"}],
)
def test_bad_list_parameters_are_422(
    emulator: EmulatorServer, api_key: str, query: dict[str, str]
) -> None:
    """Out-of-range or unparsable list parameters are 422 naming the parameter."""
    response = httpx.get(emulator.url + "/v1/files", params=query, headers=auth(api_key))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(query))]


def test_unknown_routes_and_methods_answer_json(emulator: EmulatorServer, api_key: str) -> None:
    """Unknown paths are JSON 404s and wrong methods JSON 405s."""
    missing = httpx.get(emulator.url + "/v1/nothing", headers=auth(api_key))
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong = httpx.put(emulator.url + "/v1/files", headers=auth(api_key))
    assert wrong.status_code == 405
    assert "detail" in wrong.json()
