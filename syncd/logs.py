"""Logging setup: structlog for syncd's own events, with the stdlib loggers routed alongside.

JSON lines when not on a terminal (journald), readable columns on one. Every line, from
structlog or from a library's stdlib logger, passes one redaction step first, so a registered
secret (the API key) or a signed URL's query string never reaches the output.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "THROTTLED_EVENTS",
    "RepeatThrottle",
    "SecretRedactor",
    "configure_logging",
    "get_logger",
    "redact_text",
    "register_secret",
    "reset_logging",
]

REDACTED = "[redacted]"


class _LazyLogger:
    """``structlog.get_logger(name)``, imported on the first log call: structlog (and the
    rich it loads for tracebacks) costs a quick command like ``syncd status`` a tenth of its
    start-up, and most modules only log on their slow paths."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attribute)


def get_logger(name: str) -> Any:
    """A structlog logger for ``name`` that imports structlog on first use."""
    return _LazyLogger(name)


LogFormat = Literal["json", "console", "auto"]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Libraries speak at warning and above only: their info lines (one per HTTP request from httpx,
# one per access from uvicorn) would drown syncd's own events.
_LIBRARY_LEVEL = logging.WARNING
_CHATTY_LOGGERS = ("httpx", "httpcore", "uvicorn.access")

_SENSITIVE_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "authorization",
        "proxy_authorization",
        "token",
        "password",
        "passwd",
        "secret",
        "signature",
        "sig",
        "cookie",
        "set_cookie",
    }
)
_SENSITIVE_SUFFIXES = ("_api_key", "_token", "_password", "_secret")
# A signed download URL's query string is a bearer credential: anyone holding it can read the file.
_SIGNED_QUERY = re.compile(r"\?[^\s\"'<>]*?\b(?:sig|signature)=[^\s\"'<>]*", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Shorter values would blank out ordinary words all over the log.
_MIN_SECRET_CHARS = 6
_MAX_DEPTH = 8


class SecretRedactor:
    """A structlog processor that replaces secrets in an event with ``"[redacted]"``.

    Redacts the value of any key named like a credential (``api_key``, ``authorization``,
    ``token``, ``password``, ``signature``...), every occurrence of a registered secret inside
    any string (messages, rendered exceptions, nested values), bearer tokens, and the query
    string of signed URLs. Safe to use from many threads.
    """

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Redact ``value`` from now on. Blank or very short values are ignored."""
        value = value.strip()
        if len(value) < _MIN_SECRET_CHARS:
            return
        with self._lock:
            known = set(self._secrets)
            known.update(_spellings(value))
            # Longest first, so a secret that contains another is removed whole.
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def redact_text(self, text: str) -> str:
        """``text`` with registered secrets, bearer tokens and signed query strings replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        # Each pattern only where it can match: every field of every line passes here.
        if "?" in text:
            text = _SIGNED_QUERY.sub("?" + REDACTED, text)
        if _BEARER.search(text) is None:
            return text
        return _BEARER.sub(rf"\1 {REDACTED}", text)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._redact_field(key, value, 0) for key, value in event_dict.items()}

    def _redact_field(self, key: object, value: object, depth: int) -> object:
        if isinstance(key, str) and _is_sensitive_key(key) and value is not None:
            return REDACTED
        return self._redact_value(value, depth)

    def _redact_value(self, value: object, depth: int) -> object:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if depth >= _MAX_DEPTH:
            return self.redact_text(repr(value))
        if isinstance(value, Mapping):
            return {k: self._redact_field(k, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redact_value(item, depth + 1) for item in value]
        # Renderers show other objects (exceptions, headers, paths) by their repr: if that would
        # carry a secret, log the object's redacted text instead.
        shown = repr(value)
        if self.redact_text(shown) != shown:
            return self.redact_text(str(value))
        return value


def _spellings(value: str) -> set[str]:
    """``value`` and the escaped forms a library may quote it in.

    An HTTP library that refuses a header shows its value as a ``repr`` of bytes
    (``b'Bearer sk-a\\nb'``): a secret with a control or non-ASCII character then appears in the
    text only in escaped form, which a plain search for the secret would miss.
    """
    forms = {
        value,
        repr(value)[1:-1],
        ascii(value)[1:-1],
        repr(value.encode("utf-8", "backslashreplace"))[2:-1],
        value.encode("unicode_escape").decode("ascii"),
    }
    return {form for form in forms if len(form) >= _MIN_SECRET_CHARS}


@functools.lru_cache(maxsize=4096)  # a few dozen field names, asked on every line
def _is_sensitive_key(key: str) -> bool:
    normal = key.lower().replace("-", "_")
    return normal in _SENSITIVE_KEYS or normal.endswith(_SENSITIVE_SUFFIXES)


#: Events a store outage repeats for every file, worker and tick with the same error (a full
#: disk made ~60 lines a second): each is logged once, then with a count (RepeatThrottle).
THROTTLED_EVENTS = frozenset(
    {
        "store_unavailable",
        "rescan_postponed",
        "degraded_rescan_failed",
        "heartbeat_failed",
        "state_database_still_unavailable",
    }
)
#: Seconds between two lines of the same throttled (event, error).
THROTTLE_SECONDS = 5.0
#: What makes two lines "the same": one file's error is not another's (each is worth a line).
_THROTTLE_KEY = ("event", "error", "folder", "path")


class RepeatThrottle:
    """A structlog processor: the same (event, error, folder, path) of ``events`` passes once,
    then at most once per ``every`` seconds, carrying ``repeated``: how many were held back.

    Threads: every thread that logs calls it; its table is guarded by its own lock. The table
    is bounded: keys not seen for a while are dropped.
    """

    _MAX_KEYS = 256

    def __init__(
        self,
        events: Collection[str] = THROTTLED_EVENTS,
        *,
        every: float = THROTTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = frozenset(events)
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        #: _THROTTLE_KEY values -> (when it last passed, how many were held back since).
        self._seen: dict[tuple[str, ...], tuple[float, int]] = {}

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event = event_dict.get("event")
        if event not in self._events:
            return event_dict
        key = tuple(str(event_dict.get(field, "")) for field in _THROTTLE_KEY)
        now = self._clock()
        with self._lock:
            last, held = self._seen.get(key, (None, 0))
            if last is not None and now - last < self._every:
                self._seen[key] = (last, held + 1)
                # Imported here: structlog is loaded on the first log call (start-up time),
                # and a processor only runs once it is.
                from structlog import DropEvent

                raise DropEvent
            self._seen[key] = (now, 0)
            if len(self._seen) > self._MAX_KEYS:
                horizon = now - self._every
                self._seen = {k: v for k, v in self._seen.items() if v[0] >= horizon}
        if held:
            event_dict["repeated"] = held
        return event_dict


# One redactor for the process, on purpose: logging is process-wide, the key is registered once
# at start-up, and it must stay redacted however often logging is reconfigured.
_REDACTOR = SecretRedactor()


def register_secret(value: str) -> None:
    """Never let ``value`` (e.g. the API key) appear in a log line from now on."""
    _REDACTOR.register(value)


def redact_text(text: str) -> str:
    """``text`` with every registered secret and signed-URL query string replaced.

    For text that leaves the process by another way than logging (status output, stored errors).
    """
    return _REDACTOR.redact_text(text)


class _LineWriter:
    """The one writer behind both structlog and the stdlib handler: whole lines, one lock."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            try:
                self._stream.write(message + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                # A closed or broken stream (journald gone) must not crash the thread that logs.
                return

    # structlog calls the method named after the level; every level writes the same way.
    debug = info = warning = warn = error = err = critical = fatal = exception = failure = msg
    log = msg


class _SyncdHandler(logging.Handler):
    """Stdlib handler that renders records with structlog's chain into the shared writer."""

    def __init__(self, writer: _LineWriter, formatter: logging.Formatter, level: int) -> None:
        super().__init__(level)
        self._writer = writer
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging.Handler contract: report, never raise
            self.handleError(record)
            return
        self._writer.msg(line)


def configure_logging(
    fmt: LogFormat = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Set up structlog and the stdlib root logger to write to ``stream`` (default stderr).

    ``fmt`` ``"auto"`` means console output when ``stream`` is a terminal, JSON lines otherwise.
    ``level`` (debug, info, warning, error) filters syncd's events; stdlib loggers of libraries
    are shown at warning and above. Calling it again replaces the previous setup.

    Raises:
        ValueError: ``level`` or ``fmt`` is not one of the names above.
    """
    output = sys.stderr if stream is None else stream
    level_number = _level_number(level)
    renderer = _renderer(fmt, output)
    writer = _LineWriter(output)
    import structlog

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            RepeatThrottle(),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            # Exceptions become text before redaction, so a key inside a message is caught.
            structlog.processors.format_exc_info,
            _REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=lambda *_args: writer,
        # Not cached: loggers made at import time must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    library_level = max(_LIBRARY_LEVEL, level_number)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            structlog.processors.format_exc_info,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _REDACTOR,
            renderer,
        ],
    )
    root = logging.getLogger()
    _remove_syncd_handlers(root)
    root.addHandler(_SyncdHandler(writer, formatter, library_level))
    root.setLevel(library_level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)


def reset_logging() -> None:
    """Undo :func:`configure_logging` (for tests): structlog defaults, syncd's handler removed.

    Registered secrets stay registered.
    """
    import structlog

    structlog.reset_defaults()
    root = logging.getLogger()
    _remove_syncd_handlers(root)
    root.setLevel(logging.WARNING)


def _remove_syncd_handlers(root: logging.Logger) -> None:
    for handler in [h for h in root.handlers if isinstance(h, _SyncdHandler)]:
        root.removeHandler(handler)
        handler.close()


def _level_number(level: str) -> int:
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of {', '.join(_LEVELS)}"
        ) from None


def _renderer(fmt: str, stream: TextIO) -> Processor:
    import structlog

    is_terminal = _is_terminal(stream)
    if fmt == "json" or (fmt == "auto" and not is_terminal):
        return structlog.processors.JSONRenderer()
    if fmt in {"console", "auto"}:
        return structlog.dev.ConsoleRenderer(
            colors=is_terminal, exception_formatter=structlog.dev.plain_traceback
        )
    raise ValueError(f"unknown log format {fmt!r}; expected one of json, console, auto")


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False
