"""The emulator under load: concurrent uploads, a large streamed upload, oversize bodies."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from syncd.emulator import EmulatorServer
from tests.support import wait_until

Make = Callable[..., EmulatorServer]
MiB = 1024 * 1024


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


MULTIPART = "multipart/form-data; boundary=syncdtestboundary"
#: Far past where the server must stop reading an endless body (2 x limit + 16 MiB of drain
#: slack, plus a few MiB of socket buffers): a client still sending here was never cut off.
ENDLESS_CAP_BYTES = 128 * MiB


def multipart_head(name: str, boundary: str = "syncdtestboundary") -> bytes:
    """A multipart body up to the start of its file part's content."""
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\naudio\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def multipart_stream(
    name: str, chunk: bytes, count: int, boundary: str = "syncdtestboundary"
) -> Iterator[bytes]:
    """A multipart body whose file part is ``chunk`` repeated ``count`` times, made on the fly."""
    yield multipart_head(name, boundary)
    for _ in range(count):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def test_twenty_concurrent_uploads_all_succeed(emulator: EmulatorServer, api_key: str) -> None:
    """20 threads uploading at once all get 200 and 20 distinct, listed files."""

    def upload(n: int) -> httpx.Response:
        line = f'{{"text":"sample {n}"}}\n'.encode()
        with httpx.Client(headers=auth(api_key), timeout=30) as client:
            return client.post(
                emulator.url + "/v1/files",
                files={"file": (f"part-{n}.jsonl", line * (n + 1))},
                data={"purpose": "fine-tune"},
            )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(upload, range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert [r.json()["num_lines"] for r in responses] == [n + 1 for n in range(20)]
    assert len({r.json()["id"] for r in responses}) == 20
    listed = httpx.get(emulator.url + "/v1/files", headers=auth(api_key)).json()
    assert listed["total"] == 20
    assert emulator.stats()["uploads"] == 20


def test_large_streamed_upload_does_not_sit_in_memory(
    emulator: EmulatorServer, api_key: str
) -> None:
    """A 48 MiB upload streams to disk: the process's peak memory grows far less than that."""
    chunk = secrets.token_bytes(MiB)
    count = 48
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(chunk)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline = peak_rss_bytes()
    response = httpx.post(
        emulator.url + "/v1/files",
        headers={**auth(api_key), "content-type": MULTIPART},
        content=multipart_stream("big.bin", chunk, count),
        timeout=60,
    )
    growth = peak_rss_bytes() - baseline
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["bytes"] == count * MiB
    assert created["signature"] == expected.hexdigest()[:16]
    assert (emulator.data_dir / "blobs" / created["id"]).stat().st_size == count * MiB
    assert growth < 16 * MiB, f"peak RSS grew by {growth / MiB:.1f} MiB"


def test_oversize_streamed_upload_gets_413_and_leaves_nothing(
    make_emulator: Make, api_key: str
) -> None:
    """An upload past the limit is answered 413 (not a reset) and leaves no temp file."""
    server = make_emulator(max_upload_bytes=2 * MiB)
    response = httpx.post(
        server.url + "/v1/files",
        headers={**auth(api_key), "content-type": MULTIPART},
        content=multipart_stream("big.bin", b"\0" * MiB, 8),
        timeout=30,
    )
    assert response.status_code == 413
    assert "2097152" in response.json()["detail"]
    assert server.stats()["files"] == 0
    assert server.stats()["rejected_uploads"] == 1
    assert not any((server.data_dir / "tmp").iterdir())
    assert not any((server.data_dir / "blobs").iterdir())


def test_upload_of_exactly_the_limit_is_accepted(make_emulator: Make, api_key: str) -> None:
    """The limit is inclusive: a file of exactly max_upload_bytes is stored."""
    server = make_emulator(max_upload_bytes=MiB)
    response = httpx.post(
        server.url + "/v1/files",
        headers=auth(api_key),
        files={"file": ("edge.bin", b"\1" * MiB)},
        data={"purpose": "audio"},
    )
    assert response.status_code == 200
    assert response.json()["bytes"] == MiB


def test_download_streams_large_content(emulator: EmulatorServer, api_key: str) -> None:
    """A multi-megabyte file downloads intact, with its Content-Length."""
    content = secrets.token_bytes(5 * MiB + 123)
    created = httpx.post(
        emulator.url + "/v1/files",
        headers=auth(api_key),
        files={"file": ("blob.bin", content)},
        data={"purpose": "audio"},
    ).json()
    with httpx.stream(
        "GET", f"{emulator.url}/v1/files/{created['id']}/content", headers=auth(api_key)
    ) as response:
        assert response.headers["content-length"] == str(len(content))
        received = b"".join(response.iter_bytes())
    assert received == content


def post_endless(url: str, token: str, content_type: str, head: bytes) -> httpx.Response | None:
    """POST ``head`` and then zeros without end; the answer, or None if the server reset us.

    Fails the test, quickly, if the server keeps reading far past its drain limit or leaves the
    client hanging until a timeout: it must answer and close the connection promptly.
    """

    def body() -> Iterator[bytes]:
        yield head
        zeros = b"\0" * MiB
        for _ in range(ENDLESS_CAP_BYTES // MiB):
            yield zeros
        pytest.fail(f"the server was still reading the body after {ENDLESS_CAP_BYTES} bytes")

    try:
        return httpx.post(
            url,
            headers={**auth(token), "content-type": content_type},
            content=body(),
            timeout=10,
        )
    except httpx.TimeoutException as exc:
        pytest.fail(f"the server neither answered nor closed the connection: {exc!r}")
    except httpx.TransportError:
        return None  # closing on an unread body may reset the connection before the answer


@pytest.mark.parametrize(
    ("token", "content_type", "head", "status"),
    [
        pytest.param("test-key", MULTIPART, multipart_head("endless.bin"), 413, id="too-large"),
        pytest.param("wrong", MULTIPART, multipart_head("endless.bin"), 401, id="wrong-key"),
        pytest.param("test-key", MULTIPART, b"no boundary here\r\n", 422, id="garbled"),
        pytest.param("test-key", "application/octet-stream", b"", 422, id="not-multipart"),
    ],
)
def test_endless_upload_is_cut_off(
    make_emulator: Make, token: str, content_type: str, head: bytes, status: int
) -> None:
    """A body that never ends is answered and its connection closed; the server stays healthy."""
    server = make_emulator(max_upload_bytes=MiB)
    response = post_endless(server.url + "/v1/files", token, content_type, head)
    if response is not None:
        assert (response.status_code, response.headers["connection"]) == (status, "close")
    wait_until(lambda: not any((server.data_dir / "tmp").iterdir()), what="temp file removal")
    assert server.stats()["rejected_uploads"] == (0 if status == 401 else 1)
    assert httpx.get(server.url + "/v1/files", headers=auth("test-key")).json()["total"] == 0


def test_fully_read_upload_keeps_the_connection_alive(
    emulator: EmulatorServer, api_key: str
) -> None:
    """Closing on an unread body spares normal requests: the next one reuses the connection."""

    def local_address(response: httpx.Response) -> object:
        return response.extensions["network_stream"].get_extra_info("client_addr")

    with httpx.Client(headers=auth(api_key), timeout=10) as client:
        uploaded = client.post(
            emulator.url + "/v1/files",
            files={"file": ("kept.bin", b"\1" * MiB)},
            data={"purpose": "audio"},
        )
        first = local_address(uploaded)
        listed = client.get(emulator.url + "/v1/files")
        second = local_address(listed)
    assert (uploaded.status_code, listed.status_code) == (200, 200)
    assert "connection" not in uploaded.headers
    assert first == second
