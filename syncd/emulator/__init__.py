"""A local implementation of Mistral's Files API, faithful enough for the official SDK, with the
batch-job endpoints (jobs run through a deterministic stand-in model) and ``/v1/ocr``.

syncd's embedded default remote and the server every test talks to over real loopback HTTP.
It never imports :mod:`syncd.api`: it implements the wire contract on its own.
"""

from __future__ import annotations

from syncd.emulator.app import create_app
from syncd.emulator.faults import FaultInjector, FaultSettings
from syncd.emulator.options import (
    DEFAULT_MAX_UPLOAD_BYTES,
    FAULT_KINDS,
    FILE_PURPOSES,
    EmulatorOptions,
)
from syncd.emulator.server import EmulatorServer
from syncd.emulator.state import DataDirBusyError, FileStore, StoredFile

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FAULT_KINDS",
    "FILE_PURPOSES",
    "DataDirBusyError",
    "EmulatorOptions",
    "EmulatorServer",
    "FaultInjector",
    "FaultSettings",
    "FileStore",
    "StoredFile",
    "create_app",
]
