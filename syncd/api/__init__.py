"""syncd's typed, streaming client for the Mistral Files API.

::

    from syncd.api import Mistral

    with Mistral() as client:  # MISTRAL_API_KEY, MISTRAL_SERVER_URL
        info = client.files.upload(file="train.jsonl", purpose="fine-tune")

Errors are the :mod:`syncd.errors` tree; the key never appears in reprs, logs or exceptions.
"""

from syncd.api.client import DEFAULT_SERVER_URL, Mistral
from syncd.api.files import Files
from syncd.api.job_models import (
    BatchError,
    BatchJob,
    BatchJobList,
    BatchJobStatus,
    FineTuningJob,
    FineTuningJobList,
    FineTuningJobStatus,
)
from syncd.api.jobs import Batch, BatchJobs, FineTuning, FineTuningJobs
from syncd.api.models import (
    DeletedFile,
    FileInfo,
    FileList,
    FilePurpose,
    FileSignedURL,
    FileVisibility,
    RetrievedFile,
    SampleType,
    Source,
)
from syncd.api.ocr import Ocr
from syncd.api.ocr_models import OcrPage, OcrPageDimensions, OcrResponse, OcrUsageInfo
from syncd.api.requester import StreamedResponse
from syncd.api.uploads import FileInput, sent_filename

__all__ = [
    "DEFAULT_SERVER_URL",
    "Batch",
    "BatchError",
    "BatchJob",
    "BatchJobList",
    "BatchJobStatus",
    "BatchJobs",
    "DeletedFile",
    "FileInfo",
    "FileInput",
    "FileList",
    "FilePurpose",
    "FileSignedURL",
    "FileVisibility",
    "Files",
    "FineTuning",
    "FineTuningJob",
    "FineTuningJobList",
    "FineTuningJobStatus",
    "FineTuningJobs",
    "Mistral",
    "Ocr",
    "OcrPage",
    "OcrPageDimensions",
    "OcrResponse",
    "OcrUsageInfo",
    "RetrievedFile",
    "SampleType",
    "Source",
    "StreamedResponse",
    "sent_filename",
]
