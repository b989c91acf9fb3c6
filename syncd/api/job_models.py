"""Typed wire models of the fine-tuning and batch job endpoints, as far as syncd reads them.

syncd lists jobs for two reasons: a file that a queued or running job still reads must not be
deleted, and a batch job's results come home. So the models keep what those need (id, status,
the input file ids; for batch jobs also metadata, progress counts, errors and the output and
error file ids) and let every other field through untouched. Statuses are plain strings: a
status this code does not know counts as *active*, so a new server-side state can only make
retention keep more, never delete more.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = [
    "BATCH_FINISHED_STATUSES",
    "FINE_TUNING_FINISHED_STATUSES",
    "BatchError",
    "BatchJob",
    "BatchJobList",
    "BatchJobStatus",
    "FineTuningJob",
    "FineTuningJobList",
    "FineTuningJobStatus",
]


class FineTuningJobStatus(StrEnum):
    """Fine-tuning job statuses known today (open set)."""

    QUEUED = "QUEUED"
    STARTED = "STARTED"
    VALIDATING = "VALIDATING"
    VALIDATED = "VALIDATED"
    RUNNING = "RUNNING"
    FAILED_VALIDATION = "FAILED_VALIDATION"
    FAILED = "FAILED"
    SUCCESS = "SUCCESS"
    CANCELLED = "CANCELLED"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"


class BatchJobStatus(StrEnum):
    """Batch job statuses known today (open set)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEOUT_EXCEEDED = "TIMEOUT_EXCEEDED"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    CANCELLED = "CANCELLED"


#: A job in one of these will never read its files again; every other status may.
FINE_TUNING_FINISHED_STATUSES = frozenset(
    {
        FineTuningJobStatus.FAILED_VALIDATION,
        FineTuningJobStatus.FAILED,
        FineTuningJobStatus.SUCCESS,
        FineTuningJobStatus.CANCELLED,
    }
)
BATCH_FINISHED_STATUSES = frozenset(
    {
        BatchJobStatus.SUCCESS,
        BatchJobStatus.FAILED,
        BatchJobStatus.TIMEOUT_EXCEEDED,
        BatchJobStatus.CANCELLED,
    }
)


class _JobModel(BaseModel):
    # Unknown fields are kept, never rejected: the job objects carry much more than syncd reads.
    model_config = ConfigDict(extra="allow", frozen=True)


def _file_ids(value: Any) -> Any:
    """Accept ``["id", ...]`` and ``[{"file_id": "id", "weight": 1.0}, ...]`` alike."""
    if value is None:
        return []
    if isinstance(value, list):
        return [item.get("file_id") if isinstance(item, dict) else item for item in value]
    return value


class FineTuningJob(_JobModel):
    """One fine-tuning job (``GET /v1/fine_tuning/jobs`` items and ``.../jobs/{id}``)."""

    id: str
    status: str
    model: str | None = None
    created_at: int | None = None
    training_files: list[str] = []
    validation_files: list[str] = []

    _normalise_files = field_validator("training_files", "validation_files", mode="before")(
        _file_ids
    )

    @property
    def is_active(self) -> bool:
        """The job may still read its files (any status not known to be final)."""
        return self.status not in FINE_TUNING_FINISHED_STATUSES

    @property
    def file_ids(self) -> frozenset[str]:
        """Every file the job reads: training and validation."""
        return frozenset(self.training_files) | frozenset(self.validation_files)


class FineTuningJobList(_JobModel):
    """One page of fine-tuning jobs."""

    data: list[FineTuningJob] = []
    object: str = "list"
    total: int | None = None


class BatchError(_JobModel):
    """One of a batch job's ``errors``: why it failed, and how many times that happened."""

    message: str
    count: int = 1


class BatchJob(_JobModel):
    """One batch job (``GET /v1/batch/jobs`` items and ``.../jobs/{id}``)."""

    id: str
    status: str
    input_files: list[str] = []
    endpoint: str | None = None
    model: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: int | None = None
    started_at: int | None = None
    completed_at: int | None = None
    total_requests: int = 0
    completed_requests: int = 0
    succeeded_requests: int = 0
    failed_requests: int = 0
    errors: list[BatchError] = []
    output_file: str | None = None
    error_file: str | None = None

    _normalise_files = field_validator("input_files", mode="before")(_file_ids)

    @property
    def is_active(self) -> bool:
        """The job may still read its input files (any status not known to be final)."""
        return self.status not in BATCH_FINISHED_STATUSES

    @property
    def file_ids(self) -> frozenset[str]:
        """The files the job reads (its output and error files are the server's, not inputs)."""
        return frozenset(self.input_files)


class BatchJobList(_JobModel):
    """One page of batch jobs."""

    data: list[BatchJob] = []
    object: str = "list"
    total: int | None = None
