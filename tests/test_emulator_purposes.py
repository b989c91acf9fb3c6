"""The emulator judges purposes and OCR file types as the real server does (issue 11).

The real FilePurpose enum is closed: any other purpose is a FastAPI ``enum`` 422, on upload and
in the list filter. OCR takes documents and images only; anything else gets the live API's 422
(mistralai/client-python#217). Everything runs against a real emulator over loopback.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from mistralai.client.types import UnrecognizedStr

from syncd.emulator import FILE_PURPOSES, EmulatorOptions, EmulatorServer
from syncd.purposes import rule_for

Make = Callable[..., EmulatorServer]

REAL_PURPOSES = ("fine-tune", "batch", "ocr", "audio", "agentic_safety")
EXPECTED = "'fine-tune', 'batch', 'ocr', 'audio' or 'agentic_safety'"
CHAT = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n'
BATCH = b'{"custom_id":"0","body":{"messages":[{"role":"user","content":"hi"}]}}\n'
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
#: A valid file for each real purpose (name, content).
SAMPLES: dict[str, tuple[str, bytes]] = {
    "fine-tune": ("train.jsonl", CHAT),
    "batch": ("requests.jsonl", BATCH),
    "ocr": ("scan.pdf", PDF),
    "audio": ("clip.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00"),
    "agentic_safety": ("cases.jsonl", CHAT),
}
#: What the live API answered for a .zip uploaded with purpose=ocr (client-python#217).
OCR_ZIP_BODY = {
    "detail": "Invalid file format.",
    "message": "Received file with mimetype application/zip, only application/pdf, image/.*, "
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document, "
    "application/vnd.openxmlformats-officedocument.presentationml.presentation, "
    "application/epub+zip, application/docbook+xml, application/rtf, "
    "application/vnd.oasis.opendocument.text, application/x-biblatex, application/x-bibtex, "
    "application/x-endnote+xml, application/x-fictionbook+xml, application/x-ipynb+json, "
    "application/x-jats+xml, application/x-latex, application/x-opml+xml, text/troff, "
    "text/x-dokuwiki are currently supported",
}
#: The type the emulator sees for each suffix syncd uploads to an OCR folder: each one of the
#: types in the live API's list, the same on every platform.
OCR_TYPES = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".epub": "application/epub+zip",
    ".rtf": "application/rtf",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ipynb": "application/x-ipynb+json",
    ".tex": "application/x-latex",
}


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def upload(
    server: EmulatorServer, api_key: str, name: str, content: bytes, purpose: str | None
) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/files",
        headers=auth(api_key),
        files={"file": (name, content)},
        data={} if purpose is None else {"purpose": purpose},
    )


def enum_error(loc: list[str], value: str, expected: str = EXPECTED) -> dict[str, object]:
    return {
        "type": "enum",
        "loc": loc,
        "msg": f"Input should be {expected}",
        "input": value,
        "ctx": {"expected": expected},
    }


@pytest.fixture
def client(emulator: EmulatorServer, api_key: str) -> Iterator[Mistral]:
    with Mistral(api_key=api_key, server_url=emulator.url) as sdk:
        yield sdk


def test_the_purpose_set_is_the_real_one() -> None:
    """The default set is the spec's three plus audio (docs) and agentic_safety (SDK 3.7.0)."""
    assert FILE_PURPOSES == REAL_PURPOSES
    assert EmulatorOptions().purposes == REAL_PURPOSES


def test_unknown_purpose_is_a_fastapi_enum_422(emulator: EmulatorServer, api_key: str) -> None:
    """An upload with a purpose outside the enum is refused exactly as FastAPI refuses it; no
    purpose part, or an empty one (FastAPI drops empty form values), still means fine-tune."""
    response = upload(emulator, api_key, "train.jsonl", CHAT, "not-a-purpose")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": [enum_error(["body", "purpose"], "not-a-purpose")]}
    assert emulator.stats()["files"] == 0
    for purpose in (None, ""):
        created = upload(emulator, api_key, f"t{purpose}.jsonl", CHAT, purpose)
        assert created.status_code == 200
        assert created.json()["purpose"] == "fine-tune"
        refused = upload(emulator, api_key, "scan.pdf", PDF, purpose)  # fine-tune rules apply
        assert refused.status_code == 422
        assert ".jsonl" in refused.json()["errors"][0]["message"]


@pytest.mark.parametrize("purpose", REAL_PURPOSES)
def test_each_real_purpose_is_200_spelled_exactly(
    emulator: EmulatorServer, api_key: str, purpose: str
) -> None:
    """Each real purpose uploads and is echoed; the enum is exact (no case folding, no trim)."""
    name, content = SAMPLES[purpose]
    response = upload(emulator, api_key, name, content, purpose)
    assert response.status_code == 200, response.text
    assert response.json()["purpose"] == purpose
    for variant in (purpose.upper(), f" {purpose}"):
        refused = upload(emulator, api_key, name, content, variant)
        assert refused.status_code == 422
        assert refused.json() == {"detail": [enum_error(["body", "purpose"], variant)]}
    assert emulator.stats()["files"] == 1


def test_every_bad_form_field_is_reported_at_once(emulator: EmulatorServer, api_key: str) -> None:
    """Like FastAPI, bad expiry, visibility and purpose are all listed, in the spec's order."""
    response = httpx.post(
        emulator.url + "/v1/files",
        headers=auth(api_key),
        files={"file": ("train.jsonl", CHAT)},
        data={"purpose": "retrieval", "visibility": "everyone", "expiry": "soon"},
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["body", "expiry"],
                "msg": "Input should be a valid integer",
                "input": "soon",
            },
            enum_error(["body", "visibility"], "everyone", "'workspace' or 'user'"),
            enum_error(["body", "purpose"], "retrieval"),
        ]
    }


def test_list_purpose_filter_is_the_same_closed_enum(
    emulator: EmulatorServer, api_key: str
) -> None:
    """The list's purpose filter takes each real purpose; any other value (even an empty one,
    as a query value) is a FastAPI enum 422 at ["query", "purpose"]."""
    for purpose in REAL_PURPOSES:
        name, content = SAMPLES[purpose]
        assert upload(emulator, api_key, name, content, purpose).status_code == 200
    url = emulator.url + "/v1/files"
    for purpose in REAL_PURPOSES:
        listed = httpx.get(url, params={"purpose": purpose}, headers=auth(api_key))
        assert listed.status_code == 200
        assert [f["purpose"] for f in listed.json()["data"]] == [purpose]
    for bad in ("not-a-purpose", "", "OCR"):
        refused = httpx.get(url, params={"purpose": bad}, headers=auth(api_key))
        assert refused.status_code == 422
        assert refused.json() == {"detail": [enum_error(["query", "purpose"], bad)]}


def test_the_purpose_set_can_be_extended(make_emulator: Make, api_key: str) -> None:
    """EmulatorOptions.purposes replaces the set: an added purpose works, and the 422 lists it."""
    server = make_emulator(purposes=(*FILE_PURPOSES, "retrieval"))
    created = upload(server, api_key, "doc.jsonl", CHAT, "retrieval")
    assert created.status_code == 200
    assert created.json()["purpose"] == "retrieval"
    listed = httpx.get(
        server.url + "/v1/files", params={"purpose": "retrieval"}, headers=auth(api_key)
    )
    assert [f["id"] for f in listed.json()["data"]] == [created.json()["id"]]
    refused = upload(server, api_key, "doc.jsonl", CHAT, "speech")
    extended = "'fine-tune', 'batch', 'ocr', 'audio', 'agentic_safety' or 'retrieval'"
    assert refused.json() == {"detail": [enum_error(["body", "purpose"], "speech", extended)]}
    with pytest.raises(ValueError, match="purposes"):
        EmulatorOptions(purposes=())
    with pytest.raises(ValueError, match="purposes"):
        EmulatorOptions(purposes=("fine-tune", " ocr"))


def test_ocr_zip_is_422_with_the_live_message_and_a_pdf_is_ocr_input(
    emulator: EmulatorServer, api_key: str
) -> None:
    """A .zip with purpose ocr gets the live API's 422 body, word for word; a PDF is stored
    with the live API's sample type ``ocr_input``."""
    response = upload(emulator, api_key, "scans.zip", b"PK\x03\x04" + b"\x00" * 26, "ocr")
    assert response.status_code == 422
    assert response.json() == OCR_ZIP_BODY
    assert emulator.stats()["files"] == 0
    response = upload(emulator, api_key, "scan.pdf", PDF, "ocr")
    assert response.status_code == 200
    created = response.json()
    assert (created["purpose"], created["sample_type"], created["mimetype"]) == (
        "ocr",
        "ocr_input",
        "application/pdf",
    )


@pytest.mark.parametrize(
    ("name", "declared", "mimetype"),
    [
        ("notes", "application/octet-stream", "application/octet-stream"),
        ("sheet.xlsx", None, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("data.jsonl", None, "application/jsonl"),
    ],
)
def test_ocr_refuses_other_types_naming_them(
    emulator: EmulatorServer, api_key: str, name: str, declared: str | None, mimetype: str
) -> None:
    """Any type outside the list is refused with the same message naming the file's type."""
    part = (name, b"PK\x03\x04") if declared is None else (name, b"PK\x03\x04", declared)
    response = httpx.post(
        emulator.url + "/v1/files",
        headers=auth(api_key),
        files={"file": part},
        data={"purpose": "ocr"},
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": "Invalid file format.",
        "message": OCR_ZIP_BODY["message"].replace("application/zip", mimetype, 1),
    }


def test_ocr_judges_the_declared_type_when_the_name_says_nothing(
    emulator: EmulatorServer, api_key: str
) -> None:
    """A name without a suffix is judged by the part's declared type: PDF yes, zip no."""
    url = emulator.url + "/v1/files"
    for declared, status in (("application/pdf", 200), ("application/zip", 422)):
        response = httpx.post(
            url,
            headers=auth(api_key),
            files={"file": ("scan", PDF, declared)},
            data={"purpose": "ocr"},
        )
        assert response.status_code == status
    assert response.json() == OCR_ZIP_BODY
    listed = httpx.get(url, headers=auth(api_key)).json()["data"]
    assert [f["mimetype"] for f in listed] == ["application/pdf"]


def test_every_local_ocr_suffix_is_a_type_the_emulator_takes(
    emulator: EmulatorServer, api_key: str
) -> None:
    """What syncd uploads from an OCR folder (syncd.purposes) is exactly what the API takes:
    each suffix uploads with purpose ocr (200) under a type from the live API's list."""
    assert set(rule_for("ocr").extensions) == set(OCR_TYPES)
    for suffix, mimetype in OCR_TYPES.items():
        response = upload(emulator, api_key, f"doc{suffix}", PDF, "ocr")
        assert response.status_code == 200, (suffix, response.text)
        assert response.json()["mimetype"] == mimetype, suffix


def test_the_sdk_works_for_every_real_purpose_and_refuses_another(client: Mistral) -> None:
    """The official SDK uploads and lists with each real purpose; an unknown purpose raises its
    SDKError carrying the 422 body, for upload and for the list filter."""
    for purpose in REAL_PURPOSES:
        name, content = SAMPLES[purpose]
        created = client.files.upload(
            file={"file_name": name, "content": io.BytesIO(content)},
            purpose=UnrecognizedStr(purpose),
        )
        assert created.purpose == purpose
        listed = client.files.list(purpose=UnrecognizedStr(purpose))
        assert [f.id for f in listed.data] == [created.id]
    with pytest.raises(SDKError) as upload_error:
        client.files.upload(
            file={"file_name": "train.jsonl", "content": CHAT},
            purpose=UnrecognizedStr("not-a-purpose"),
        )
    assert upload_error.value.status_code == 422
    assert json.loads(upload_error.value.body) == {
        "detail": [enum_error(["body", "purpose"], "not-a-purpose")]
    }
    with pytest.raises(SDKError) as list_error:
        client.files.list(purpose=UnrecognizedStr("not-a-purpose"))
    assert list_error.value.status_code == 422
    assert json.loads(list_error.value.body) == {
        "detail": [enum_error(["query", "purpose"], "not-a-purpose")]
    }


def test_list_reports_every_bad_parameter_at_once(emulator: EmulatorServer, api_key: str) -> None:
    """Like FastAPI, a list with several bad parameters names each (with pydantic's ctx)."""
    response = httpx.get(
        emulator.url + "/v1/files",
        params={"page": "-1", "page_size": "0", "include_total": "maybe", "purpose": "x"},
        headers=auth(api_key),
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "greater_than_equal",
                "loc": ["query", "page"],
                "msg": "Input should be greater than or equal to 0",
                "input": "-1",
                "ctx": {"ge": 0},
            },
            {
                "type": "greater_than_equal",
                "loc": ["query", "page_size"],
                "msg": "Input should be greater than or equal to 1",
                "input": "0",
                "ctx": {"ge": 1},
            },
            {
                "type": "bool_parsing",
                "loc": ["query", "include_total"],
                "msg": "Input should be a valid boolean",
                "input": "maybe",
            },
            enum_error(["query", "purpose"], "x"),
        ]
    }
