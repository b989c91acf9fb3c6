"""Writing one job's results for each input path it answers.

Batch: the output file (ordered by the input's ``custom_id``s) and the error file, each
downloaded from the API, checked against the size the API reports, and landed. OCR: the
answer's Markdown and the raw answer as JSON. Each landed file is recorded (what syncd wrote
there), the input path's result marked written, and ``results_downloaded`` audited, in one
transaction.

Threads: the results worker's thread. No lock of its own.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import structlog

from syncd.api import Mistral
from syncd.api.deadlines import answer_deadline
from syncd.api.ocr_models import OcrResponse
from syncd.errors import ApiTimeoutError, LocalFileError
from syncd.hashing import open_regular
from syncd.results import landing
from syncd.results.batch_order import custom_ids, ordered_by
from syncd.results.book import JobBook
from syncd.results.naming import beside_name, result_names
from syncd.results.specs import ResultsSpec
from syncd.store import jobs as job_rows
from syncd.store import repo
from syncd.store.records import JobRecord, JobResultRecord

__all__ = ["ResultWriter", "Written"]

log = structlog.get_logger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Written:
    """What writing one job's results did."""

    paths: int
    bytes: int
    beside: int


class ResultWriter:
    """Lands results; ``on_bytes(folder_name, n)`` counts what was downloaded (metrics)."""

    def __init__(
        self,
        book: JobBook,
        client: Mistral,
        *,
        on_bytes: Callable[[str, int], None],
    ) -> None:
        self._book = book
        self._client = client
        self._on_bytes = on_bytes

    # -- batch ------------------------------------------------------------------------------

    def write_batch(
        self, job: JobRecord, spec: ResultsSpec, waiting: list[JobResultRecord]
    ) -> Written:
        order = self._input_order(job, spec) if job.output_file_id else []
        total = beside = 0
        for result in waiting:
            names = self._names(spec, job, result.rel_path)
            landed: list[landing.Landed] = []
            for file_id, name, transform in (
                (job.output_file_id, names[0], ordered_by(order)),
                (job.error_file_id, names[1], None),
            ):
                if file_id is None:
                    self._remove_stale(spec, name, result.rel_path)
                    continue
                landed.append(self._land_remote(spec, job, file_id, name, transform))
            total += sum(item.size for item in landed)
            beside += self._record(spec, job, result, landed)
        return Written(len(waiting), total, beside)

    def _land_remote(
        self,
        spec: ResultsSpec,
        job: JobRecord,
        file_id: str,
        name: str,
        transform: landing.Transform | None,
    ) -> landing.Landed:
        info = self._client.files.retrieve(file_id)
        # The client's own rule: the same budget as an upload of that size.
        budget = self._client.timeouts.budget(info.bytes or 0)
        with (
            self._client.files.download(file_id) as response,
            answer_deadline(response, budget, f"downloading {name}") as expired,
        ):
            landed = landing.land(
                spec.results,
                name,
                _bounded(response.iter_bytes(), expired, name),
                expected_size=info.bytes,
                previous=self._previous(spec, name),
                beside=beside_name(name, job.key),
                transform=transform,
                owner=self._book.node,
            )
        self._on_bytes(spec.name, landed.size)
        return landed

    def _input_order(self, job: JobRecord, spec: ResultsSpec) -> list[str]:
        """The input's custom_ids in order: from the local file while it still holds the
        job's content, else from the uploaded copy."""
        try:
            local = open_regular(spec.root / job.rel_path, root=spec.root)
        except LocalFileError:
            local = None
        if local is not None:
            digest = hashlib.sha256()
            with io.BufferedReader(local) as lines:
                order = list(custom_ids(_hashed_lines(lines, digest)))
            if digest.hexdigest() == job.sha256:
                return order
        with self._client.files.download(job.input_file_id) as response:
            return list(custom_ids(_lines(response.iter_bytes(_CHUNK))))

    def _remove_stale(self, spec: ResultsSpec, name: str, rel_path: str) -> None:
        """The new version has no such result (no errors this time): the one syncd wrote for
        the previous version goes, unless a person edited it."""
        with self._book.session() as s:
            written = job_rows.result_file(s, spec.key, name)
        if written is None or written.input_rel_path != rel_path:
            return
        previous = landing.Previous(written.size, written.sha256)
        if landing.remove_if_unchanged(spec.results, name, previous):
            with self._book.session() as s:
                job_rows.forget_result_file(s, spec.key, name)
            log.info("stale_result_removed", folder=spec.name, path=rel_path, result=name)

    # -- OCR --------------------------------------------------------------------------------

    def write_ocr(
        self,
        job: JobRecord,
        spec: ResultsSpec,
        waiting: list[JobResultRecord],
        answer: OcrResponse,
    ) -> Written:
        markdown = answer.markdown.encode()
        if markdown and not markdown.endswith(b"\n"):
            markdown += b"\n"
        raw = (
            json.dumps(answer.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
        ).encode()
        return self._write_contents(job, spec, waiting, (markdown, raw))

    def copy_ocr(
        self, job: JobRecord, spec: ResultsSpec, waiting: list[JobResultRecord]
    ) -> Written | None:
        """Write an OCR job's results for another path from a result already written, when
        one is intact; None when none is (the caller asks the API again)."""
        with self._book.session() as s:
            done = job_rows.written_files(s, job.key)
        sources: dict[int, bytes] = {}
        for written in done:
            for index, suffix in ((0, ".md"), (1, ".ocr.json")):
                if index in sources or not written.path.endswith(suffix):
                    continue
                try:  # read once: what is checked is what is copied
                    content = b"".join(landing.read_chunks(spec.results, written.path))
                except LocalFileError:
                    continue  # gone, or no longer a regular file
                if hashlib.sha256(content).hexdigest() == written.sha256:
                    sources[index] = content
        if len(sources) != 2:
            return None
        return self._write_contents(job, spec, waiting, (sources[0], sources[1]))

    def _write_contents(
        self,
        job: JobRecord,
        spec: ResultsSpec,
        waiting: list[JobResultRecord],
        contents: tuple[bytes, bytes],
    ) -> Written:
        total = beside = 0
        for result in waiting:
            names = self._names(spec, job, result.rel_path)
            landed = [
                landing.land(
                    spec.results,
                    name,
                    [content],
                    expected_size=len(content),
                    previous=self._previous(spec, name),
                    beside=beside_name(name, job.key),
                    owner=self._book.node,
                )
                for name, content in zip(names, contents, strict=True)
            ]
            total += sum(item.size for item in landed)
            beside += self._record(spec, job, result, landed)
        return Written(len(waiting), total, beside)

    # -- shared -----------------------------------------------------------------------------

    def _names(self, spec: ResultsSpec, job: JobRecord, rel_path: str) -> tuple[str, str]:
        """The result names of ``rel_path``; with its extension when another input's results
        hold the short names already (``contract.pdf`` and ``contract.png``)."""
        names = result_names(job.kind, rel_path)
        with self._book.session() as s:
            holder = job_rows.result_file(s, spec.key, names[0])
        if holder is not None and holder.input_rel_path != rel_path:
            return result_names(job.kind, rel_path, keep_extension=True)
        return names

    def _previous(self, spec: ResultsSpec, name: str) -> landing.Previous | None:
        with self._book.session() as s:
            written = job_rows.result_file(s, spec.key, name)
        return None if written is None else landing.Previous(written.size, written.sha256)

    def _record(
        self,
        spec: ResultsSpec,
        job: JobRecord,
        result: JobResultRecord,
        landed: list[landing.Landed],
    ) -> int:
        now = self._book.clock()
        beside = any(item.beside for item in landed)
        with self._book.session() as s:
            for item in landed:
                job_rows.record_result_file(
                    s,
                    job_rows.WrittenFile(
                        folder=spec.key,
                        path=item.path,
                        sha256=item.sha256,
                        size=item.size,
                        job_key=job.key,
                        input_rel_path=result.rel_path,
                        written_at=now,
                    ),
                )
            job_rows.mark_results(s, [result.id], state="written", now=now, beside=beside)
            repo.audit(
                s,
                "results_downloaded",
                now=now,
                folder=spec.key,
                rel_path=result.rel_path,
                sha256=result.sha256,
                file_id=job.output_file_id,
                bytes=sum(item.size for item in landed),
                detail=", ".join(item.path for item in landed)
                + (" (beside an edited file)" if beside else ""),
            )
        log.info(
            "results_downloaded",
            folder=spec.name,
            path=result.rel_path,
            job=job.remote_job_id or job.key,
            results=[item.path for item in landed],
            bytes=sum(item.size for item in landed),
            beside_edited_file=beside,
        )
        return int(beside)


def _bounded(chunks: Iterator[bytes], expired: Callable[[], bool], name: str) -> Iterator[bytes]:
    """The download's chunks (each as the network gave it) until its budget is spent; a read
    blocked when it runs out is cut off by :func:`~syncd.api.deadlines.answer_deadline`."""
    for chunk in chunks:
        if expired():
            raise ApiTimeoutError(f"downloading {name}: took longer than its budget")
        yield chunk


def _hashed_lines(source: BinaryIO, digest: hashlib._Hash) -> Iterator[bytes]:
    for line in source:
        digest.update(line)
        yield line


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending
