"""How an emulator instance behaves: auth, dedupe, upload limit, purposes and injected faults.

A frozen value object built once by the CLI or a test; the running server keeps only the fault
part mutable (see :mod:`syncd.emulator.faults`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_BATCH_JOB_SECONDS",
    "DEFAULT_FAULT_KINDS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FAULT_KINDS",
    "FILE_PURPOSES",
    "JOB_FAULT_KINDS",
    "TARGETED_FAULT_KINDS",
    "EmulatorOptions",
    "check_fault_settings",
]

#: Faults that decide how a batch job ends, drawn like the others but acted on only by a
#: batch job create (any other request drawing one is served normally): ``job-fail`` ends
#: FAILED, ``job-timeout`` ends TIMEOUT_EXCEEDED, ``job-stuck`` never finishes.
JOB_FAULT_KINDS: tuple[str, ...] = ("job-fail", "job-timeout", "job-stuck")
#: Faults aimed at one kind of request, for crash tests of results coming home; any other
#: request drawing one is served normally. ``job-create-hang``: a batch job create (or an OCR
#: request) is served (the job exists, the document was read) and its answer never comes.
#: ``download-stall``: a file's content starts and then stops coming, for good.
TARGETED_FAULT_KINDS: tuple[str, ...] = ("job-create-hang", "download-stall")
#: Every fault the emulator can inject, in the order the CLI documents them. ``hang`` reads the
#: request and never answers; ``stall`` answers, then stops sending in the middle of the body.
FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "reset",
    "lost-response",
    "hang",
    "stall",
    *JOB_FAULT_KINDS,
    *TARGETED_FAULT_KINDS,
)
#: The faults drawn when none are named: each ends by itself (a hang lasts until the client's
#: timeout, so it is only injected when asked for).
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "reset", "lost-response")

#: How long a batch job takes from create to its end by default: short enough that a result
#: comes home within seconds of a drop, long enough to watch QUEUED and RUNNING go by.
DEFAULT_BATCH_JOB_SECONDS = 2.0

#: The Files API's per-file cap: 512 MB, decimal as the API documents it.
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1000 * 1000

#: The upload purposes the real API takes; its FilePurpose enum is closed, so any other purpose
#: is a 422. The spec lists fine-tune, batch and ocr; the docs upload with audio, and the SDK
#: 3.7.0 enum adds agentic_safety. A newer purpose goes here (or in EmulatorOptions.purposes).
FILE_PURPOSES: tuple[str, ...] = ("fine-tune", "batch", "ocr", "audio", "agentic_safety")


@dataclass(frozen=True)
class EmulatorOptions:
    """Settings of one emulator instance.

    ``api_key`` None accepts any bearer token (a missing header is still 401). ``fault_rate`` is
    the probability that one ``/v1`` request gets a fault drawn from ``fault_kinds``.
    ``purposes`` is the closed set of upload purposes (and ``purpose`` list filters) accepted;
    anything else is a FastAPI-style 422, as from the real API. ``batch_job_seconds`` is how
    long a batch job takes from create to its end (a quarter QUEUED, the rest RUNNING; 0: at
    once); None leaves every job where it is until ``POST /_emulator/jobs/{id}/status`` moves it.
    """

    # repr=False: the key must never show up in logs or tracebacks that print the options.
    api_key: str | None = field(default=None, repr=False)
    dedupe: bool = True
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    retry_after: float | None = None
    latency_ms: int = 0
    seed: int | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    purposes: tuple[str, ...] = FILE_PURPOSES
    batch_job_seconds: float | None = DEFAULT_BATCH_JOB_SECONDS

    def __post_init__(self) -> None:
        check_fault_settings(self.fault_rate, self.fault_kinds, self.retry_after, self.latency_ms)
        if self.max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if not self.purposes or not all(p and p == p.strip() for p in self.purposes):
            raise ValueError(
                f"purposes must be non-empty names without surrounding spaces, got {self.purposes}"
            )
        if self.batch_job_seconds is not None and not 0 <= self.batch_job_seconds < 86400:
            raise ValueError(
                f"batch_job_seconds must be between 0 and a day, got {self.batch_job_seconds}"
            )


def check_fault_settings(
    fault_rate: float, fault_kinds: tuple[str, ...], retry_after: float | None, latency_ms: int
) -> None:
    """Raise ValueError naming the first fault setting that is out of range."""
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
    unknown = [kind for kind in fault_kinds if kind not in FAULT_KINDS]
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}"
        )
    if fault_rate > 0 and not fault_kinds:
        raise ValueError("fault_rate is above 0 but fault_kinds is empty")
    if retry_after is not None and retry_after < 0:
        raise ValueError(f"retry_after must not be negative, got {retry_after}")
    if latency_ms < 0:
        raise ValueError(f"latency_ms must not be negative, got {latency_ms}")
