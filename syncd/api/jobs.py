"""The ``fine_tuning.jobs`` and ``batch.jobs`` resources: list, iterate, get, create.

Named like the official SDK (``client.fine_tuning.jobs.list(...)``, ``client.batch.jobs.list``).
syncd needs them to learn which files running jobs still read before retention deletes anything;
``create`` exists so tests (and scripts) can start jobs against the emulator. Listing and getting
are retried under the one retry policy; ``create`` is sent once, since a retried create could
start a second job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from syncd.api.job_models import (
    BatchJob,
    BatchJobList,
    FineTuningJob,
    FineTuningJobList,
)
from syncd.api.requester import QueryParams, Requester
from syncd.errors import UsageError

__all__ = ["Batch", "BatchJobs", "FineTuning", "FineTuningJobs"]

_FINE_TUNING_PATH = "/v1/fine_tuning/jobs"
_BATCH_PATH = "/v1/batch/jobs"


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


JobT = TypeVar("JobT", bound=_HasId)


class FineTuningJobs:
    """Fine-tuning jobs (``client.fine_tuning.jobs``)."""

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def __repr__(self) -> str:
        return f"FineTuningJobs(server_url={self._requester.server_url!r})"

    def list(
        self,
        page: int = 0,
        page_size: int = 100,
        model: str | None = None,
        created_after: datetime | None = None,
        created_by_me: bool = False,
        status: str | None = None,
    ) -> FineTuningJobList:
        """One page of jobs (``page`` counts from 0), newest first; ``status`` filters on one."""
        params = _listing_params(page, page_size, model, created_after, created_by_me)
        if status is not None:
            params.append(("status", str(status)))
        return _get_page(self._requester, _FINE_TUNING_PATH, params, FineTuningJobList)

    def iter_all(self, page_size: int = 100) -> Iterator[FineTuningJob]:
        """Every job, page after page (each page retried on its own)."""
        return _iter_jobs(
            lambda page: self.list(page=page, page_size=page_size),
            lambda listing: listing.data,
            page_size,
        )

    def get(self, job_id: str) -> FineTuningJob:
        """One job, with its current status."""
        return _get_one(self._requester, _FINE_TUNING_PATH, job_id, FineTuningJob)

    def create(
        self,
        model: str,
        training_files: Sequence[str | Mapping[str, Any]],
        validation_files: Sequence[str] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        suffix: str | None = None,
        auto_start: bool | None = None,
    ) -> FineTuningJob:
        """Start a fine-tuning job on uploaded files (ids, or ``{"file_id", "weight"}``)."""
        body: dict[str, Any] = {
            "model": model,
            "training_files": [
                {"file_id": item, "weight": 1} if isinstance(item, str) else dict(item)
                for item in training_files
            ],
            "hyperparameters": dict(hyperparameters or {}),
        }
        if validation_files is not None:
            body["validation_files"] = list(validation_files)
        if suffix is not None:
            body["suffix"] = suffix
        if auto_start is not None:
            body["auto_start"] = auto_start
        return _post_once(self._requester, _FINE_TUNING_PATH, body, FineTuningJob)


class BatchJobs:
    """Batch jobs (``client.batch.jobs``)."""

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def __repr__(self) -> str:
        return f"BatchJobs(server_url={self._requester.server_url!r})"

    def list(
        self,
        page: int = 0,
        page_size: int = 100,
        model: str | None = None,
        created_after: datetime | None = None,
        created_by_me: bool = False,
        status: Sequence[str] | str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> BatchJobList:
        """One page of jobs (``page`` counts from 0), newest first.

        ``status`` keeps jobs in any of these statuses (the key repeats). ``metadata`` keeps
        jobs whose metadata holds every one of these key/value pairs; as the spec's ``metadata``
        query parameter is an exploded object, each pair travels as a query parameter of its
        own (``?syncd_key=abc``), which is what the official SDK sends too.

        Raises:
            UsageError: a metadata key is empty or is one of the listing's own parameters
                (it would be read as that parameter).
        """
        params = _listing_params(page, page_size, model, created_after, created_by_me)
        statuses = [status] if isinstance(status, str) else list(status or ())
        params += [("status", str(value)) for value in statuses]
        params += _metadata_params(metadata)
        return _get_page(self._requester, _BATCH_PATH, params, BatchJobList)

    def iter_all(
        self,
        page_size: int = 100,
        *,
        status: Sequence[str] | str | None = None,
        metadata: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
    ) -> Iterator[BatchJob]:
        """Every job matching the filters, page after page (each page retried on its own)."""
        return _iter_jobs(
            lambda page: self.list(
                page=page,
                page_size=page_size,
                status=status,
                metadata=metadata,
                created_after=created_after,
            ),
            lambda listing: listing.data,
            page_size,
        )

    def get(self, job_id: str) -> BatchJob:
        """One job, with its current status."""
        return _get_one(self._requester, _BATCH_PATH, job_id, BatchJob)

    def create(
        self,
        input_files: Sequence[str],
        endpoint: str,
        model: str | None = None,
        metadata: Mapping[str, str] | None = None,
        timeout_hours: int | None = None,
    ) -> BatchJob:
        """Start a batch job over uploaded ``.jsonl`` request files.

        ``metadata`` (keys of 1-32 characters, string values of 1-512) is kept with the job and
        can find it again: ``list(metadata={...})``. Sent once, never retried: a retried create
        whose first answer was lost would start a second job. Tag the job with a key of your own
        in ``metadata`` and look for it with ``list`` before creating again.
        """
        body: dict[str, Any] = {"input_files": list(input_files), "endpoint": endpoint}
        if model is not None:
            body["model"] = model
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if timeout_hours is not None:
            body["timeout_hours"] = timeout_hours
        return _post_once(self._requester, _BATCH_PATH, body, BatchJob)


class FineTuning:
    """``client.fine_tuning``: holds :attr:`jobs`, as the official SDK does."""

    def __init__(self, requester: Requester) -> None:
        self.jobs = FineTuningJobs(requester)


class Batch:
    """``client.batch``: holds :attr:`jobs`, as the official SDK does."""

    def __init__(self, requester: Requester) -> None:
        self.jobs = BatchJobs(requester)


ListT = TypeVar("ListT", FineTuningJobList, BatchJobList)
ModelT = TypeVar("ModelT", FineTuningJob, BatchJob)


def _listing_params(
    page: int,
    page_size: int,
    model: str | None,
    created_after: datetime | None,
    created_by_me: bool,
) -> list[tuple[str, str | int]]:
    """The query parameters both job listings share; each adds its own ``status`` form."""
    params: list[tuple[str, str | int]] = [
        ("page", page),
        ("page_size", page_size),
        ("created_by_me", "true" if created_by_me else "false"),
    ]
    if model is not None:
        params.append(("model", model))
    if created_after is not None:
        params.append(("created_after", created_after.isoformat()))
    return params


#: The batch listing's own query parameters: a metadata key of the same name would be read as it.
_BATCH_LIST_PARAMS = frozenset(
    {
        "page",
        "page_size",
        "model",
        "agent_id",
        "metadata",
        "created_after",
        "created_by_me",
        "status",
        "order_by",
    }
)


def _metadata_params(metadata: Mapping[str, str] | None) -> list[tuple[str, str | int]]:
    params: list[tuple[str, str | int]] = []
    for key, value in (metadata or {}).items():
        if not key or key in _BATCH_LIST_PARAMS:
            raise UsageError(
                f"metadata key {key!r} cannot be filtered on: it must be a non-empty string"
                f" other than {', '.join(sorted(_BATCH_LIST_PARAMS))}"
            )
        params.append((key, str(value)))
    return params


def _get_page(requester: Requester, path: str, params: QueryParams, model: type[ListT]) -> ListT:
    def attempt() -> ListT:
        request = requester.build("GET", path, params=params)
        return requester.send_json(request, model, operation="list jobs")

    return requester.retrying(attempt, operation="list jobs")


def _get_one(requester: Requester, path: str, job_id: object, model: type[ModelT]) -> ModelT:
    # Checked before any request: "<id>/cancel" would reach another endpoint.
    if not isinstance(job_id, str) or not job_id.strip() or "/" in job_id:
        raise UsageError(f"job_id must be a non-empty string without '/', got {job_id!r}")
    url_path = f"{path}/{quote(job_id, safe='')}"
    return requester.retrying(
        lambda: requester.send_json(requester.build("GET", url_path), model, operation="get job"),
        operation="get job",
    )


def _post_once(
    requester: Requester, path: str, body: Mapping[str, Any], model: type[ModelT]
) -> ModelT:
    return requester.post_json_once(path, body, model, operation="create job")


def _iter_jobs(
    fetch: Callable[[int], ListT],
    items: Callable[[ListT], Sequence[JobT]],
    page_size: int,
) -> Iterator[JobT]:
    """Every item of every page; stops on a short page, a page with nothing new, or the total.

    A page with nothing new stops the loop because a server that ignores ``page`` would
    otherwise be asked forever.
    """
    if page_size < 1:
        raise UsageError(f"page_size must be at least 1, got {page_size}")
    seen: set[str] = set()
    page = 0
    while True:
        listing = fetch(page)
        data = items(listing)
        fresh = [item for item in data if item.id not in seen]
        seen.update(item.id for item in fresh)
        yield from fresh
        if len(data) < page_size or not fresh:
            return
        if listing.total is not None and len(seen) >= listing.total:
            return
        page += 1
