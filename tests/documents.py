"""Small documents for the OCR tests: PDFs with a text layer (or none), and PNG headers."""

from __future__ import annotations

import struct
import zlib


def make_pdf(
    pages: list[str | None],
    *,
    compress: bool = False,
    size: tuple[int, int] = (612, 792),
    pages_in_reverse_file_order: bool = False,
) -> bytes:
    """A PDF with one page per item: its text drawn with ``Tj`` (one line per ``\\n``), or no
    content stream at all for None (a scanned page). ``compress`` deflates the content streams;
    ``pages_in_reverse_file_order`` writes the page objects last-first while the page tree keeps
    the true order (the reader must follow the tree)."""
    objects: dict[int, bytes] = {}
    page_ids = [3 + 2 * n for n in range(len(pages))]
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    width, height = size
    objects[2] = (
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} /MediaBox [0 0 {width} {height}] >>"
    ).encode()
    for pid, text in zip(page_ids, pages, strict=True):
        if text is None:
            objects[pid] = b"<< /Type /Page /Parent 2 0 R >>"
            continue
        objects[pid] = f"<< /Type /Page /Parent 2 0 R /Contents {pid + 1} 0 R >>".encode()
        ops = [b"BT /F1 12 Tf 72 720 Td"]
        for line in text.split("\n"):
            escaped = line.encode("latin-1").replace(b"\\", b"\\\\")
            escaped = escaped.replace(b"(", b"\\(").replace(b")", b"\\)")
            ops.append(b"(" + escaped + b") Tj 0 -14 Td")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        extra = b""
        if compress:
            stream = zlib.compress(stream)
            extra = b" /Filter /FlateDecode"
        objects[pid + 1] = (
            b"<< /Length " + str(len(stream)).encode() + extra + b" >>\nstream\n"
            b"" + stream + b"\nendstream"
        )
    order = sorted(objects, reverse=pages_in_reverse_file_order)
    out = [b"%PDF-1.4\n"]
    for oid in order:
        out.append(f"{oid} 0 obj\n".encode() + objects[oid] + b"\nendobj\n")
    out.append(b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")
    return b"".join(out)


def make_png(width: int, height: int) -> bytes:
    """The signature and IHDR chunk of a PNG of that size (enough for a size to be read)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
