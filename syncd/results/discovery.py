"""Uploaded files become jobs: each (folder, content) gets one, each path joins it.

A copy of content a job already answers joins that job (its results are written for the copy
too, without a second job); a changed file is new content, hence a new job.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from syncd.errors import StoreError
from syncd.results.book import JobBook
from syncd.results.specs import ResultsSpec
from syncd.store import jobs as job_rows

__all__ = ["discover"]

log = structlog.get_logger(__name__)


def discover(book: JobBook, specs: Mapping[str, ResultsSpec]) -> int:
    """Turn newly uploaded files of ``specs``' folders into jobs; how many paths joined one."""
    with book.session() as s:
        found = job_rows.new_uploaded_inputs(s, list(specs))
    joined = 0
    for item in found:
        spec = specs[item.folder]
        key = job_rows.job_key(item.folder, spec.kind, item.sha256)
        try:
            with book.session() as s:
                job, created = job_rows.ensure_job(
                    s,
                    key=key,
                    folder=item.folder,
                    kind=spec.kind,
                    mode=spec.mode,
                    sha256=item.sha256,
                    input_file_id=item.file_id,
                    rel_path=item.rel_path,
                    model=spec.model,
                    now=book.clock(),
                )
                job_rows.add_job_result(
                    s,
                    folder=item.folder,
                    rel_path=item.rel_path,
                    sha256=item.sha256,
                    job_key=key,
                    now=book.clock(),
                )
        except StoreError as exc:
            # Another node recorded the same path at the same moment (fleet mode), or the
            # store is failing: the next cycle looks again.
            log.debug("job_discovery_skipped", folder=spec.name, path=item.rel_path, error=str(exc))
            continue
        joined += 1
        log.info(
            "job_input_found",
            folder=spec.name,
            path=item.rel_path,
            job=key,
            new_job=created,
            state=job.state,
        )
    return joined
