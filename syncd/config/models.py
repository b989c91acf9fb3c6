"""The validated configuration: one frozen pydantic model per TOML table.

Every default lives here. Models hold resolved values (absolute paths, timedeltas, tuples), so
no component ever sees a relative path or a duration string. Reading the file and wording the
errors is the loader's job; this module only decides what is valid.
"""

from __future__ import annotations

import contextlib
import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from syncd import paths, purposes
from syncd.config import database_urls, endpoints, schedules
from syncd.config.credentials import (
    SecretFile,
    credential_path,
    read_password_file,
    read_token_file,
)
from syncd.config.durations import format_duration
from syncd.config.field_types import (
    Duration,
    NonEmptyStr,
    PositiveDuration,
    SecondsDuration,
    context_of,
    resolve_path,
)
from syncd.config.problems import HiddenValueError
from syncd.validation.batch import BATCH_ENDPOINTS, BatchEndpoint

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "ApiConfig",
    "Config",
    "FolderConfig",
    "LogConfig",
    "MetricsConfig",
    "NodeConfig",
    "ResultsConfig",
    "RetentionConfig",
    "StateConfig",
    "WatchConfig",
]

DEFAULT_API_KEY_ENV = "MISTRAL_API_KEY"
# Capitals only: a mixed-case token here is almost certainly the key itself, pasted into the
# wrong setting, and it must then be neither accepted as a name nor echoed in the error.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


class _Table(BaseModel):
    """Frozen, unknown keys refused.

    The field docstrings document the code only: pydantic's ``use_attribute_docstrings`` would
    read and parse this module's source on every start to turn them into descriptions nothing
    reads (50-80 ms of each command's start-up, issue 25).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiConfig(_Table):
    """``[api]``: which Files API server to talk to, and how hard to try."""

    server_url: StrictStr = endpoints.MISTRAL_SERVER
    """The API's http(s) base URL (default: Mistral's), or ``"embedded"`` (the in-process
    emulator, only when asked for)."""
    api_key_env: StrictStr = DEFAULT_API_KEY_ENV
    """Environment variable holding the API key; looked at first."""
    api_key_file: Path | None = None
    """File holding the API key (relative: to ``$CREDENTIALS_DIRECTORY``, else the config's dir)."""
    timeout: SecondsDuration = timedelta(minutes=1)
    """A request with no byte moving (sending, or waiting for the answer) this long failed."""
    connect_timeout: SecondsDuration = timedelta(seconds=10)
    """Reaching the server (TCP and TLS) may take this long."""
    timeout_per_mb: SecondsDuration = timedelta(seconds=10)
    """A request's whole budget: connect_timeout + timeout + this much per MB of its body."""
    concurrency: StrictInt = Field(default=4, ge=1, le=64)
    """Uploads in flight at once."""
    max_attempts: StrictInt = Field(default=8, ge=1, le=100)
    """Tries per file before it is marked failed (until its content changes)."""

    @property
    def is_embedded(self) -> bool:
        """True when the daemon runs the Files API emulator itself."""
        return self.server_url == endpoints.EMBEDDED_SERVER

    @field_validator("server_url")
    @classmethod
    def _check_server_url(cls, value: str) -> str:
        return endpoints.check_server_url(value)

    @field_validator("api_key_env")
    @classmethod
    def _check_env_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise HiddenValueError(
                "expected an environment variable name in capitals, such as MISTRAL_API_KEY "
                "(the name, not the key itself; the value is not shown in case it is one)"
            )
        return value

    @field_validator("api_key_file", mode="before")
    @classmethod
    def _resolve_key_file(cls, value: object, info: ValidationInfo) -> Path | None:
        return None if value is None else credential_path(value, context_of(info))


class StateConfig(_Table):
    """``[state]``: where syncd keeps what it knows (the state database)."""

    url: StrictStr = database_urls.default_state_url({})
    """SQLAlchemy URL, resolved: a relative SQLite path is relative to the config file. Never
    with a password (refused): see ``password_file``."""
    embedded_data_dir: Path = database_urls.DEFAULT_STATE_DIR / "emulator"
    """Where the embedded emulator keeps uploaded files; default: beside the database."""
    password_file: InstanceOf[SecretFile] | None = None
    """File holding the database password (relative: to ``$CREDENTIALS_DIRECTORY``, else the
    config's dir), read at load. Absent: libpq's PGPASSWORD, PGPASSFILE or ~/.pgpass apply."""

    @property
    def database_url(self) -> str:
        """The URL to hand to SQLAlchemy (absolute SQLite path; the password from
        ``password_file`` included): never show it, show :attr:`display_url`."""
        if self.password_file is None:
            return self.url
        return database_urls.with_password(self.url, self.password_file.value.get_secret_value())

    @property
    def database_path(self) -> Path | None:
        """The SQLite database file, or ``None`` for other databases and in-memory SQLite."""
        return database_urls.sqlite_path(self.url)

    @property
    def display_url(self) -> str:
        """The URL with any password masked (``***`` when ``password_file`` gives one)."""
        return database_urls.mask_password(self.database_url)

    @model_validator(mode="before")
    @classmethod
    def _fill_location_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        context = context_of(info)
        filled = dict(data)
        filled.setdefault("url", database_urls.default_state_url(context.environ))
        if "embedded_data_dir" not in filled and isinstance(filled["url"], str):
            with contextlib.suppress(ValueError):  # a bad url is reported by its own validator
                resolved = database_urls.resolve_state_url(filled["url"], context.base_dir)
                db_path = database_urls.sqlite_path(resolved)
                state_dir = db_path.parent if db_path else None
                if state_dir is None:  # not SQLite, or in memory: the state directory
                    state_dir = database_urls.default_state_dir(context.environ)
                filled["embedded_data_dir"] = state_dir / "emulator"
        return filled

    @field_validator("url")
    @classmethod
    def _resolve_url(cls, value: str, info: ValidationInfo) -> str:
        return database_urls.resolve_state_url(value, context_of(info).base_dir)

    @field_validator("embedded_data_dir", mode="before")
    @classmethod
    def _resolve_data_dir(cls, value: object, info: ValidationInfo) -> Path:
        return resolve_path(value, context_of(info).base_dir)

    @field_validator("password_file", mode="before")
    @classmethod
    def _read_password_file(cls, value: object, info: ValidationInfo) -> SecretFile | None:
        if value is None or isinstance(value, SecretFile):
            return value
        url = info.data.get("url")  # absent when the url itself is bad: reported on its own
        if isinstance(url, str) and database_urls.is_sqlite(url):
            raise HiddenValueError(
                "a SQLite database has no password; remove password_file, or point url at "
                "a PostgreSQL server"
            )
        return read_password_file(credential_path(value, context_of(info)))


class WatchConfig(_Table):
    """``[watch]``: when a changed file counts as finished, and how often to rescan."""

    settle: Duration = timedelta(seconds=2)
    """Quiet time after the last change before a file is hashed and uploaded."""
    settle_max: PositiveDuration = timedelta(minutes=10)
    """Upper bound on waiting for a file that is written to forever (a growing log)."""
    rescan_interval: SecondsDuration = timedelta(minutes=15)
    """Full rescan period: catches changes the watcher missed."""
    use_polling: StrictBool = False
    """Poll instead of inotify (network filesystems, where inotify sees nothing)."""
    timestamp_granularity: Literal["auto"] | Duration = "auto"
    """How coarse the folders' file timestamps are: a file hashed within this of its last
    change is hashed again on the next look (two writes in one tick leave the same stamps).
    ``"auto"``: 2s for files whose stamps have no sub-second part (FAT, some NFS and SMB
    servers), 0.1s otherwise; ``"0s"`` turns the rule off."""

    @property
    def timestamp_granularity_ns(self) -> int | None:
        """The configured granularity in nanoseconds; None for ``"auto"``."""
        if self.timestamp_granularity == "auto":
            return None
        return int(self.timestamp_granularity / timedelta(microseconds=1)) * 1000

    @field_validator("timestamp_granularity")
    @classmethod
    def _check_granularity(cls, value: str | timedelta) -> str | timedelta:
        if isinstance(value, timedelta) and value > timedelta(minutes=1):
            raise ValueError(
                "must be at most 1m (FAT's 2s is the coarsest filesystem clock in use)"
            )
        return value

    @model_validator(mode="after")
    def _settle_max_covers_settle(self) -> WatchConfig:
        if self.settle_max < self.settle:
            raise HiddenValueError(
                f"settle_max ({format_duration(self.settle_max)}) must not be shorter than "
                f"settle ({format_duration(self.settle)})"
            )
        return self


class ResultsConfig(_Table):
    """``[results]``: how syncd follows the jobs whose results come home (see each folder's
    ``results``)."""

    poll_interval: PositiveDuration = timedelta(seconds=2)
    """One job listing per folder with jobs in flight, this often while they move..."""
    poll_interval_max: SecondsDuration = timedelta(minutes=1)
    """...backed off up to this while none of them changes. No jobs in flight: no listing."""
    overdue_after: PositiveDuration = timedelta(hours=25)
    """A job still unfinished this long after it was created is reported (it stays followed)."""

    @model_validator(mode="after")
    def _max_covers_interval(self) -> ResultsConfig:
        if self.poll_interval_max < self.poll_interval:
            raise HiddenValueError(
                f"poll_interval_max ({format_duration(self.poll_interval_max)}) must not be "
                f"shorter than poll_interval ({format_duration(self.poll_interval)})"
            )
        return self


class RetentionConfig(_Table):
    """``[retention]``: when expired remote files are deleted (each folder sets its own age)."""

    schedule: StrictStr = "1h"
    """An interval ("1h") or a 5-field cron expression in UTC ("0 3 * * *")."""
    dry_run: StrictBool = False
    """Log what would be deleted and delete nothing."""
    max_deletes_per_run: StrictInt = Field(default=100, ge=0)
    """Safety valve: a run deletes at most this many files (0: none)."""

    @property
    def schedule_interval(self) -> timedelta | None:
        """The interval, when ``schedule`` is one."""
        parsed = schedules.parse_schedule(self.schedule)
        return parsed if isinstance(parsed, timedelta) else None

    @property
    def schedule_cron(self) -> str | None:
        """The cron expression (fields joined by single spaces), when ``schedule`` is one."""
        parsed = schedules.parse_schedule(self.schedule)
        return parsed if isinstance(parsed, str) else None

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        parsed = schedules.parse_schedule(value)
        return parsed if isinstance(parsed, str) else value.strip()


class LogConfig(_Table):
    """``[log]``: how log lines look and how many there are."""

    format: Literal["json", "console", "auto"] = "auto"
    """``json`` lines (journald), ``console`` (people), ``auto``: console on a terminal."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe level that is written."""

    @field_validator("format", "level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


#: A node name or a shared folder's id: it becomes part of every state-store key, so it is kept
#: to characters that read the same in logs, URLs and SQL.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_IDENTIFIER_RULE = "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"


def _default_node_name() -> str:
    """The host name, cut at the first dot (``gpu-3.example.com`` -> ``gpu-3``)."""
    name = socket.gethostname().split(".", 1)[0]
    return name if _IDENTIFIER.fullmatch(name) else "localhost"


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"must be {_IDENTIFIER_RULE}")
    return value


class NodeConfig(_Table):
    """``[node]``: this syncd among others sharing one PostgreSQL state store (fleet mode)."""

    name: StrictStr = Field(default_factory=_default_node_name)
    """This node's name in the store: its folders' rows and its claims carry it."""
    heartbeat: PositiveDuration = timedelta(seconds=10)
    """How often the daemon records that it is alive (and its queue depth)."""
    lease: PositiveDuration = timedelta(seconds=60)
    """A node silent for longer is taken for dead: its uploads in flight are taken over."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_identifier(value)

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> NodeConfig:
        if self.lease < 2 * self.heartbeat:
            raise ValueError(
                f"lease ({format_duration(self.lease)}) must be at least two heartbeats "
                f"({format_duration(2 * self.heartbeat)}): a node late by one heartbeat is "
                "not dead"
            )
        return self


class MetricsConfig(_Table):
    """``[metrics]``: the listener of the status page, its JSON, /metrics and /healthz."""

    listen: StrictStr | None = None
    """``"host:port"`` to serve the status page, /api, /metrics and /healthz on; absent: none."""
    token_file: InstanceOf[SecretFile] | None = Field(default=None, validate_default=True)
    """File holding the bearer token every request must carry (relative: to
    ``$CREDENTIALS_DIRECTORY``, else the config's dir), read at load. Required when ``listen``
    is not a loopback address; optional (but then enforced) on loopback."""

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` to bind (IPv6 without brackets), or ``None`` when off."""
        return None if self.listen is None else endpoints.parse_listen_address(self.listen)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        endpoints.parse_listen_address(value)
        return value

    @field_validator("token_file", mode="before")
    @classmethod
    def _read_token_file(cls, value: object, info: ValidationInfo) -> SecretFile | None:
        if isinstance(value, SecretFile):
            return value
        if value is not None:
            return read_token_file(credential_path(value, context_of(info)))
        listen = info.data.get("listen")  # absent when listen itself is bad: reported on its own
        # Anyone who can reach a non-loopback address could read file names, errors and the
        # lineage of the training data: such a listener is refused without a token.
        if isinstance(listen, str):
            host, _port = endpoints.parse_listen_address(listen)
            if not endpoints.is_loopback_host(host):
                raise HiddenValueError(
                    f"required: listen = {listen!r} is not a loopback address; name a file "
                    "holding a bearer token (clients then send 'Authorization: Bearer <token>'), "
                    'or listen on "127.0.0.1:<port>"'
                )
        return None


class FolderConfig(_Table):
    """``[[folders]]``: one local folder kept in step with the remote, with one purpose."""

    path: Path
    """The folder (relative: to the config file's directory)."""
    name: NonEmptyStr = ""
    """Label in logs, status and metrics; default: the folder's last path component."""
    # Before ``purpose``: its validator reads this one.
    allow_unknown_purpose: StrictBool = False
    """Accept a purpose syncd does not know (one the API added later): uploaded without
    content checks. Without it, an unknown purpose is an error (usually a typo)."""
    purpose: NonEmptyStr
    """Files API purpose of every file uploaded from here (fine-tune, batch, ocr, audio...)."""
    include: tuple[NonEmptyStr, ...] = Field(default=(), min_length=1)
    """Globs of files to upload; default: the purpose's file types (``*.jsonl`` for fine-tune)."""
    exclude_defaults: StrictBool = True
    """Keep the built-in excludes (hidden files, editor backups, partial downloads)."""
    exclude: tuple[NonEmptyStr, ...] = purposes.DEFAULT_EXCLUDE
    """Globs never uploaded; added to the built-in ones unless ``exclude_defaults = false``."""
    validation: Literal["strict", "basic", "off"] = Field(default="strict", alias="validate")
    """Content check before upload: ``strict`` (every line), ``basic`` (JSON lines), ``off``."""
    on_change: Literal["replace", "keep"] = "replace"
    """When a file changes: ``replace`` deletes the old remote copy, ``keep`` leaves it."""
    retention: PositiveDuration | None = None
    """Delete remote files older than this; absent: keep them forever."""
    keep_current: StrictBool = False
    """Retention never deletes the remote copy of a file that still exists locally."""
    batch_endpoint: BatchEndpoint | None = None
    """Batch folders: the endpoint their jobs run ("/v1/chat/completions"...); with it, strict
    validation checks each request body against that endpoint's schema. Absent: bodies are
    not checked against any endpoint."""
    results: Path | None = None
    """Batch and ocr folders: where their results are written, mirroring the folder's tree
    (outside every watched folder). Absent: nothing comes back."""
    batch_jobs: Literal["wait", "submit"] = "wait"
    """Batch folders with ``results``: ``wait`` for jobs someone else creates on the files
    syncd uploaded, or ``submit`` one job per uploaded file (with ``batch_model`` and
    ``batch_endpoint``)."""
    batch_model: NonEmptyStr | None = None
    """The model of the jobs syncd submits."""
    ocr_model: NonEmptyStr = "mistral-ocr-latest"
    """OCR folders with ``results``: the model each uploaded document is read with."""
    max_jobs_per_hour: StrictInt = Field(default=100, ge=1)
    """Spending guard: at most this many new jobs (or OCR documents) per hour from this folder;
    past it, files wait in the ``held`` state (nothing is lost)."""
    id: StrictStr | None = None
    """The folder's identity across nodes (fleet mode): required with ``shared``."""
    shared: StrictBool = False
    """The same data seen by several nodes (an NFS or SMB share): keyed by ``id``, whatever
    its mount path, and synced by all of them together. Unshared folders belong to this node."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return _check_identifier(value)

    @property
    def returns_results(self) -> bool:
        """Whether results of this folder's files come home (a results folder is set)."""
        return self.results is not None

    @model_validator(mode="after")
    def _results_need_a_job(self) -> FolderConfig:
        if self.results is None:
            return self
        if self.purpose not in ("batch", "ocr"):
            raise HiddenValueError(
                f"results: only batch and ocr folders have results to bring back, not "
                f"{self.purpose!r}; remove results"
            )
        if self.purpose == "batch" and self.batch_jobs == "submit":
            missing = [
                name
                for name, value in (
                    ("batch_model", self.batch_model),
                    ("batch_endpoint", self.batch_endpoint),
                )
                if value is None
            ]
            if missing:
                raise HiddenValueError(
                    f'batch_jobs = "submit" needs {" and ".join(missing)} (the model and '
                    "endpoint of the jobs syncd creates), e.g. batch_model = "
                    '"mistral-small-latest", batch_endpoint = "/v1/chat/completions"'
                )
        return self

    @model_validator(mode="after")
    def _shared_needs_an_id(self) -> FolderConfig:
        if self.shared and self.id is None:
            raise ValueError(
                'shared = true needs an id = "..." naming the folder the same way on every node'
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _fill_derived_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        purpose = filled.get("purpose")
        if "include" not in filled and isinstance(purpose, str):
            filled["include"] = purposes.rule_for(purpose).default_include
        # Always validate exclude, so the built-in globs get merged in by _merge_excludes.
        filled.setdefault("exclude", ())
        if "name" not in filled and "path" in filled:
            with contextlib.suppress(ValueError):  # a bad path is reported by its own validator
                filled["name"] = resolve_path(filled["path"], context_of(info).base_dir).name
        return filled

    @field_validator("path", mode="before")
    @classmethod
    def _resolve_path(cls, value: object, info: ValidationInfo) -> Path:
        return resolve_path(value, context_of(info).base_dir)

    @field_validator("results", mode="before")
    @classmethod
    def _resolve_results(cls, value: object, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, context_of(info).base_dir)

    @field_validator("purpose")
    @classmethod
    def _check_purpose(cls, value: str, info: ValidationInfo) -> str:
        if value != value.strip():
            raise ValueError("must not start or end with whitespace")
        if len(value) > purposes.PURPOSE_LENGTH:
            # The state database stores it in a column of that size (PostgreSQL enforces it).
            raise ValueError(
                f"must be at most {purposes.PURPOSE_LENGTH} characters (the state database's limit)"
            )
        if value not in purposes.KNOWN_PURPOSES and not info.data.get("allow_unknown_purpose"):
            raise ValueError(purposes.unknown_purpose_message(value))
        return value

    @field_validator("batch_endpoint", mode="before")
    @classmethod
    def _add_leading_slash(cls, value: object) -> object:
        # The docs' endpoint tabs write "v1/chat/completions"; the API's names start with "/".
        if isinstance(value, str) and "/" + value in BATCH_ENDPOINTS:
            return "/" + value
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _usable_globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            paths.check_patterns(value)
        except paths.InvalidPatternError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("exclude")
    @classmethod
    def _merge_excludes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("exclude_defaults", True):
            value = purposes.DEFAULT_EXCLUDE + value
        return tuple(dict.fromkeys(value))


class Config(_Table):
    """The whole configuration file."""

    api: ApiConfig = Field(default_factory=ApiConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    node: NodeConfig = Field(default_factory=NodeConfig)
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    folders: tuple[FolderConfig, ...] = Field(min_length=1)
    """The folders to keep in step; at least one."""

    @property
    def store_threads(self) -> int:
        """Threads that may hold a state-store session at once: the upload workers, plus the
        scan, the dispatcher, the scheduler's jobs and the status reporter."""
        return self.api.concurrency + 4

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things that work but are probably not what was meant, one line each."""
        found: list[str] = []
        known = ", ".join(purposes.KNOWN_PURPOSES)
        for index, folder in enumerate(self.folders):
            if folder.purpose not in purposes.KNOWN_PURPOSES:
                found.append(
                    f"folders[{index}].purpose: unknown purpose {folder.purpose!r} allowed by "
                    f"allow_unknown_purpose (known: {known}); its files are uploaded as they "
                    "are, without content checks"
                )
        for index, folder in enumerate(self.folders):
            if folder.batch_endpoint is not None and folder.purpose != "batch":
                found.append(
                    f"folders[{index}].batch_endpoint: has no effect on a {folder.purpose!r} "
                    'folder; it applies to purpose = "batch" only'
                )
            elif folder.batch_endpoint is not None and folder.validation != "strict":
                found.append(
                    f"folders[{index}].batch_endpoint: has no effect with validate = "
                    f'"{folder.validation}"; bodies are checked by validate = "strict" only'
                )
        database = self.state.database_path
        for index, folder in enumerate(self.folders):
            if database is not None and database.is_relative_to(folder.path):
                found.append(
                    f"state.url: the state database {database} is inside folders[{index}] "
                    f"({folder.path}); keep it outside the watched folders"
                )
        return tuple(found)

    @model_validator(mode="before")
    @classmethod
    def _validate_every_table(cls, data: Any) -> Any:
        # Absent tables are validated from {} (not built as defaults) so their defaults see
        # the resolve context: $STATE_DIRECTORY and the config file's directory.
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for table in ("api", "state", "watch", "retention", "log", "metrics", "node", "results"):
            filled.setdefault(table, {})
        return filled

    @field_validator("folders")
    @classmethod
    def _folders_do_not_overlap(cls, folders: tuple[FolderConfig, ...]) -> tuple[FolderConfig, ...]:
        clashes: list[str] = []
        for second, later in enumerate(folders):
            for first, earlier in enumerate(folders[:second]):
                clashes.extend(_clash(first, earlier, second, later))
        clashes.extend(_results_clashes(folders))
        if clashes:
            raise HiddenValueError("\n".join(clashes))
        return folders


def _results_clashes(folders: tuple[FolderConfig, ...]) -> list[str]:
    """Results folders that would be uploaded back, or shared by two folders."""
    found: list[str] = []
    for index, folder in enumerate(folders):
        results = folder.results
        if results is None:
            continue
        for other_index, other in enumerate(folders):
            if results == other.path or results.is_relative_to(other.path):
                found.append(
                    f"folders[{index}].results ({results}) is inside folders[{other_index}].path "
                    f"({other.path}); results must stay outside every watched folder, or they "
                    "would be uploaded back"
                )
            elif other.path.is_relative_to(results):
                found.append(
                    f"folders[{other_index}].path ({other.path}) is inside "
                    f"folders[{index}].results ({results}); keep watched folders and results "
                    "folders apart"
                )
        for other_index in range(index):
            if folders[other_index].results == results:
                found.append(
                    f"folders[{other_index}].results and folders[{index}].results are both "
                    f"{results}; give each folder its own results folder"
                )
    return found


def _clash(first: int, earlier: FolderConfig, second: int, later: FolderConfig) -> list[str]:
    """Why two folders cannot both be watched: one file would be uploaded twice."""
    found: list[str] = []
    if earlier.path == later.path:
        found.append(
            f"folders[{first}].path and folders[{second}].path are the same directory "
            f"({earlier.path}); list each folder once"
        )
    elif later.path.is_relative_to(earlier.path) or earlier.path.is_relative_to(later.path):
        (outer, outer_path), (inner, inner_path) = sorted(
            [(first, earlier.path), (second, later.path)], key=lambda item: len(item[1].parts)
        )
        found.append(
            f"folders[{inner}].path ({inner_path}) is inside folders[{outer}].path "
            f"({outer_path}); nested folders would upload the same files twice"
        )
    if earlier.name == later.name:
        found.append(
            f"folders[{first}].name and folders[{second}].name are both {earlier.name!r}; "
            "give each folder a distinct name"
        )
    if earlier.id is not None and earlier.id == later.id:
        found.append(
            f"folders[{first}].id and folders[{second}].id are both {earlier.id!r}; "
            "an id names one folder"
        )
    return found
