"""A small, forgiving reader of a PDF's pages and their text layer, for the OCR stand-in.

Good enough for the PDFs tests and people drop into an example folder, not a PDF library:

* objects are found by scanning for ``N G obj ... endobj`` (no xref table is read, so a file
  whose objects all sit in compressed object streams yields no pages: the caller falls back);
* pages are the ``/Type /Page`` objects, in the order of the page tree's ``/Kids`` when the
  tree can be followed, else in file order; the size comes from ``/MediaBox`` (inherited);
* a page's text is what the ``Tj``, ``TJ``, ``'`` and ``"`` operators show in its content
  streams (plain or ``/FlateDecode``), literal and hex strings, one line per ``BT``/``ET``
  block or text-positioning move. Fonts' encodings are ignored: bytes are read as Latin-1,
  which is right for the standard 14 fonts and simple generated PDFs.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

__all__ = ["PdfPage", "read_pdf_pages"]

_OBJECT = re.compile(rb"(\d+)\s+(\d+)\s+obj\b(.*?)\bendobj", re.S)
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\n?endstream", re.S)
_REF = re.compile(rb"(\d+)\s+\d+\s+R")
_TYPE_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_TYPE_PAGES = re.compile(rb"/Type\s*/Pages\b")
_MEDIABOX = re.compile(rb"/MediaBox\s*\[\s*([-\d.\s]+)\]")
_PARENT = re.compile(rb"/Parent\s+(\d+)\s+\d+\s+R")
# A text operand (literal or hex string, or an array of them) followed by its operator, or a
# line-moving operator. Literal strings allow one level of balanced parentheses and escapes. An
# array holds strings and numbers, never a bracket outside a string: so an unterminated "[" is
# given up at the next bracket, and a stream full of them costs linear time, not quadratic.
_TEXT_TOKEN = re.compile(
    rb"\((?P<lit>(?:\\.|[^\\()]|\((?:\\.|[^\\()])*\))*)\)\s*(?P<op1>Tj|'|\")"
    rb"|<(?P<hex>[0-9A-Fa-f\s]*)>\s*(?P<op2>Tj|'|\")"
    rb"|\[(?P<arr>(?:\((?:\\.|[^\\()])*\)|<[0-9A-Fa-f\s]*>|[^\[\]()<>\\])*)\]\s*TJ"
    rb"|(?P<move>\bT\*|\bTd\b|\bTD\b|\bET\b)"
)
_ARRAY_STRING = re.compile(rb"\((?P<lit>(?:\\.|[^\\()]|\((?:\\.|[^\\()])*\))*)\)|<(?P<hex>[^>]*)>")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|[\s\S])")
_DEFAULT_SIZE = (612.0, 792.0)  # US Letter, in points


@dataclass(frozen=True, slots=True)
class PdfPage:
    """One page: its text layer (may be empty) and its size in points."""

    text: str
    width: float
    height: float


def read_pdf_pages(data: bytes) -> list[PdfPage]:
    """The pages of the PDF ``data`` with their text; empty when none can be found."""
    objects = {int(m.group(1)): m.group(3) for m in _OBJECT.finditer(data)}
    page_ids = _ordered_page_ids(objects)
    return [
        PdfPage(_page_text(objects, objects[page_id]), *_page_size(objects, page_id))
        for page_id in page_ids
    ]


def _dictionary(body: bytes) -> bytes:
    """The object's dictionary part (before any stream)."""
    return body.split(b"stream", 1)[0]


def _is_page(body: bytes) -> bool:
    return bool(_TYPE_PAGE.search(_dictionary(body)))


def _ordered_page_ids(objects: dict[int, bytes]) -> list[int]:
    in_file_order = [oid for oid, body in objects.items() if _is_page(body)]
    roots = [
        oid
        for oid, body in objects.items()
        if _TYPE_PAGES.search(_dictionary(body)) and not _PARENT.search(_dictionary(body))
    ]
    if len(roots) != 1:
        return in_file_order
    ordered: list[int] = []
    seen: set[int] = set()

    def walk(oid: int) -> None:
        if oid in seen or oid not in objects:
            return
        seen.add(oid)
        body = _dictionary(objects[oid])
        if _is_page(body):
            ordered.append(oid)
            return
        kids = re.search(rb"/Kids\s*\[([^\]]*)\]", body)
        for ref in _REF.finditer(kids.group(1) if kids else b""):
            walk(int(ref.group(1)))

    walk(roots[0])
    # A tree that misses pages (a broken /Kids) must not lose text: keep file order then.
    return ordered if set(ordered) == set(in_file_order) else in_file_order


def _page_size(objects: dict[int, bytes], page_id: int) -> tuple[float, float]:
    oid: int | None = page_id
    for _ in range(32):  # MediaBox is inheritable; the depth bound stops a cyclic tree
        if oid is None or oid not in objects:
            break
        body = _dictionary(objects[oid])
        box = _MEDIABOX.search(body)
        if box is not None:
            numbers = [float(n) for n in box.group(1).split()]
            if len(numbers) == 4:
                return abs(numbers[2] - numbers[0]), abs(numbers[3] - numbers[1])
        parent = _PARENT.search(body)
        oid = int(parent.group(1)) if parent else None
    return _DEFAULT_SIZE


def _page_text(objects: dict[int, bytes], page: bytes) -> str:
    contents = re.search(rb"/Contents\s*(\[[^\]]*\]|\d+\s+\d+\s+R)", _dictionary(page))
    if contents is None:
        return ""
    lines: list[str] = []
    for ref in _REF.finditer(contents.group(1)):
        body = objects.get(int(ref.group(1)))
        if body is not None:
            lines.extend(_shown_lines(_stream_data(body)))
    return "\n".join(line for line in lines if line.strip())


def _stream_data(body: bytes) -> bytes:
    found = _STREAM.search(body)
    if found is None:
        return b""
    raw = found.group(1)
    if b"/FlateDecode" in _dictionary(body):
        try:
            return zlib.decompress(raw)
        except zlib.error:
            return b""
    return raw


def _shown_lines(stream: bytes) -> list[str]:
    lines: list[str] = []
    current: list[bytes] = []
    for token in _TEXT_TOKEN.finditer(stream):
        if token.group("move") is not None:
            if current:
                lines.append(b"".join(current).decode("latin-1"))
                current = []
            continue
        if token.group("arr") is not None:
            for part in _ARRAY_STRING.finditer(token.group("arr")):
                current.append(_decode_string(part.group("lit"), part.group("hex")))
        else:
            current.append(_decode_string(token.group("lit"), token.group("hex")))
        if token.group("op1") in (b"'", b'"') or token.group("op2") in (b"'", b'"'):
            # ' and " move to the next line before showing: the text starts a new line.
            shown = current.pop()
            if current:
                lines.append(b"".join(current).decode("latin-1"))
            current = [shown]
    if current:
        lines.append(b"".join(current).decode("latin-1"))
    return lines


def _decode_string(literal: bytes | None, hexa: bytes | None) -> bytes:
    if hexa is not None:
        digits = re.sub(rb"\s", b"", hexa)
        if len(digits) % 2:
            digits += b"0"
        return bytes.fromhex(digits.decode("ascii"))
    return _ESCAPE.sub(_unescape, literal or b"")


def _unescape(match: re.Match[bytes]) -> bytes:
    escaped = match.group(1)
    if escaped[:1].isdigit():
        return bytes([int(escaped, 8) & 0xFF])
    if escaped in (b"\n", b"\r", b"\r\n"):
        return b""  # a line continuation
    return _ESCAPES.get(escaped, escaped)
