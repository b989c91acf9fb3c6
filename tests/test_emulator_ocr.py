"""``POST /v1/ocr`` on the emulator: documents it reads, its stand-in text, and its refusals."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from syncd.errors import ApiError, InvalidRequestError, NotFoundError, UsageError
from tests.documents import make_pdf, make_png

MODEL = "mistral-ocr-latest"


@pytest.fixture
def client(emulator: EmulatorServer, api_key: str) -> Iterator[Mistral]:
    with Mistral(api_key=api_key, server_url=emulator.url, max_retries=0) as mistral:
        yield mistral


def upload(client: Mistral, name: str, content: bytes) -> str:
    return client.files.upload(file={"file_name": name, "content": content}, purpose="ocr").id


def post_ocr(emulator: EmulatorServer, api_key: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{emulator.url}/v1/ocr", json=body, headers={"Authorization": f"Bearer {api_key}"}
    )


def test_a_pdfs_text_layer_comes_back_page_by_page_in_page_tree_order(client: Mistral) -> None:
    """Each page's Tj text (plain or deflated stream) is its Markdown, in the page tree's order
    even when the page objects are written in another order; sizes follow the MediaBox."""
    pdf = make_pdf(
        ["Invoice 42\nTotal: 10 EUR", "Page (two) \\ end"],
        compress=True,
        size=(595, 842),
        pages_in_reverse_file_order=True,
    )
    answer = client.ocr.process(MODEL, file_id=upload(client, "invoice.pdf", pdf))
    assert [p.index for p in answer.pages] == [0, 1]
    assert answer.pages[0].markdown == "Invoice 42\nTotal: 10 EUR"
    assert answer.pages[1].markdown == "Page (two) \\ end"
    dimensions = answer.pages[0].dimensions
    assert dimensions is not None
    assert (dimensions.dpi, dimensions.width, dimensions.height) == (200, 1653, 2339)
    assert answer.model == MODEL
    assert answer.usage_info.pages_processed == 2
    assert answer.usage_info.doc_size_bytes == len(pdf)
    assert answer.markdown == "Invoice 42\nTotal: 10 EUR\n\nPage (two) \\ end"


def test_a_page_without_text_gets_stand_in_markdown_derived_from_the_bytes(
    client: Mistral,
) -> None:
    """A scanned page (no content stream) gets a stable line that differs with the content."""
    first = upload(client, "scan.pdf", make_pdf(["cover", None]))
    again = client.ocr.process(MODEL, file_id=first)
    assert again.pages[0].markdown == "cover"
    stand_in = again.pages[1].markdown
    assert "scan.pdf, page 2" in stand_in
    assert "Stand-in OCR text" in stand_in
    assert client.ocr.process(MODEL, file_id=first).pages[1].markdown == stand_in
    other = upload(client, "scan.pdf", make_pdf(["cover 2", None]))
    assert client.ocr.process(MODEL, file_id=other).pages[1].markdown != stand_in


def test_pages_limits_the_answer_to_those_pages(client: Mistral) -> None:
    """``pages`` as a list or as ``"0,2-3"`` keeps only those 0-based pages."""
    file_id = upload(client, "four.pdf", make_pdf(["a", "b", "c", "d"]))
    assert [p.markdown for p in client.ocr.process(MODEL, file_id=file_id, pages=[1]).pages] == [
        "b"
    ]
    ranged = client.ocr.process(MODEL, file_id=file_id, pages="0,2-3")
    assert [p.index for p in ranged.pages] == [0, 2, 3]
    assert ranged.usage_info.pages_processed == 3


def test_signed_urls_of_its_own_files_and_data_urls_are_read(client: Mistral) -> None:
    """document_url and image_url accept the emulator's own signed URLs and data: URLs."""
    file_id = upload(client, "letter.pdf", make_pdf(["Dear reader"]))
    url = client.files.get_signed_url(file_id).url
    assert client.ocr.process(MODEL, document_url=url).pages[0].markdown == "Dear reader"
    png = make_png(640, 480)
    image_id = upload(client, "photo.png", png)
    image = client.ocr.process(MODEL, image_url=client.files.get_signed_url(image_id).url)
    dimensions = image.pages[0].dimensions
    assert dimensions is not None and (dimensions.width, dimensions.height) == (640, 480)
    data_url = "data:application/pdf;base64," + base64.b64encode(make_pdf(["inline"])).decode()
    assert client.ocr.process(MODEL, document_url=data_url).pages[0].markdown == "inline"


def test_urls_it_cannot_read_and_unknown_files_are_refused_as_the_api_does(
    client: Mistral, emulator: EmulatorServer, api_key: str
) -> None:
    """A foreign URL or a tampered signature is a 422; an unknown file id a 404."""
    file_id = upload(client, "a.pdf", make_pdf(["x"]))
    url = client.files.get_signed_url(file_id).url
    with pytest.raises(InvalidRequestError, match="fetches nothing"):
        client.ocr.process(MODEL, document_url="https://example.com/a.pdf")
    with pytest.raises(InvalidRequestError, match="invalid or has expired"):
        client.ocr.process(MODEL, document_url=url.replace("sig=", "sig=0"))
    with pytest.raises(NotFoundError):
        client.ocr.process(MODEL, file_id="8b2a4c0e-0000-4000-8000-000000000000")
    answer = post_ocr(emulator, api_key, {"model": MODEL, "document": {"file_id": "nope"}})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "uuid_parsing"


@pytest.mark.parametrize(
    ("body", "kind", "loc"),
    [
        ({"document": {"type": "file", "file_id": "x"}}, "missing", ["body", "model"]),
        ({"model": MODEL}, "missing", ["body", "document"]),
        (
            {"model": MODEL, "document": {"type": "file"}, "temperature": 0},
            "extra_forbidden",
            ["body", "temperature"],
        ),
        (
            {"model": MODEL, "document": {"type": "video", "video_url": "x"}},
            "literal_error",
            ["body", "document", "type"],
        ),
        (
            {"model": MODEL, "document": {"type": ["file"], "file_id": "x"}},
            "literal_error",
            ["body", "document", "type"],
        ),
        (
            {"model": MODEL, "document": {"type": "document_url"}},
            "missing",
            ["body", "document", "document_url", "document_url"],
        ),
        (
            {"model": MODEL, "document": {"type": "file", "file_id": "x"}, "include_blocks": 3},
            "bool_type",
            ["body", "include_blocks"],
        ),
        ([1, 2], "model_type", ["body"]),
    ],
)
def test_a_bad_body_is_a_fastapi_422(
    emulator: EmulatorServer, api_key: str, body: Any, kind: str, loc: list[str]
) -> None:
    """The OCRRequest schema's rules (required fields, no extra fields) as FastAPI reports them."""
    answer = post_ocr(emulator, api_key, body)
    assert answer.status_code == 422, answer.text
    (item,) = answer.json()["detail"]
    assert (item["type"], item["loc"]) == (kind, loc)


def test_plain_text_documents_are_their_own_markdown_and_blocks_are_paragraphs(
    client: Mistral,
) -> None:
    """UTF-8 text is one page of that text; include_blocks gives one text block a paragraph."""
    file_id = upload(client, "notes.tex", "# Titre\n\nDeuxième paragraphe".encode())
    answer = client.ocr.process(MODEL, file_id=file_id, include_blocks=True)
    (page,) = answer.pages
    assert page.markdown == "# Titre\n\nDeuxième paragraphe"
    blocks = (page.model_extra or {})["blocks"]
    assert [(b["type"], b["content"]) for b in blocks] == [
        ("text", "# Titre"),
        ("text", "Deuxième paragraphe"),
    ]


def test_the_client_names_exactly_one_document_and_never_retries(
    make_emulator: Any, api_key: str
) -> None:
    """process() refuses zero or two documents before sending, and a 503 is not retried."""
    server = make_emulator()
    with Mistral(api_key=api_key, server_url=server.url, max_retries=3) as mistral:
        with pytest.raises(UsageError):
            mistral.ocr.process(MODEL)
        with pytest.raises(UsageError):
            mistral.ocr.process(MODEL, file_id="a", document_url="https://x")
        file_id = upload(mistral, "a.pdf", make_pdf(["x"]))
        server.set_faults(fault_rate=1.0, fault_kinds=("503",))
        before = server.stats()["requests"]
        with pytest.raises(ApiError):
            mistral.ocr.process(MODEL, file_id=file_id)
        assert server.stats()["requests"] == before + 1


def test_a_hostile_content_stream_is_read_in_linear_time(client: Mistral) -> None:
    """A page whose stream is 100,000 unterminated '[' answers at once (the array pattern used
    to backtrack quadratically: minutes of a worker thread for a 100 KB PDF)."""
    pdf = make_pdf(["X"]).replace(b"(X) Tj", b"[" * 100_000)  # the reader ignores /Length
    file_id = upload(client, "hostile.pdf", pdf)
    started = time.monotonic()
    answer = client.ocr.process(MODEL, file_id=file_id)
    assert time.monotonic() - started < 5.0
    assert answer.usage_info.pages_processed == 1
