"""Uploads, one part per concern (read them in this order to follow one file):

- :mod:`~syncd.upload.dispatcher`: the dispatch loop and the worker pool (:class:`Uploader`);
- :mod:`~syncd.upload.transaction`: one file's upload, intent to send to verify, with adoption;
- :mod:`~syncd.upload.success`: a recorded upload, superseded deletions, lost claims;
- :mod:`~syncd.upload.failures`: the other outcomes (retry with its backoff and the outage
  gate, quarantine, changed, vanished);
- :mod:`~syncd.upload.rows`: writing an outcome to its row, waiting out a refusing store;
- :mod:`~syncd.upload.work`: settings, events and the claimed row they share.
"""

from syncd.upload.dispatcher import Uploader
from syncd.upload.work import TRANSIENT_ATTEMPTS_FACTOR, UploadEvent, UploadSettings

__all__ = ["TRANSIENT_ATTEMPTS_FACTOR", "UploadEvent", "UploadSettings", "Uploader"]
