"""Config files on disk -> validated models, and the one-line-per-problem errors for bad ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pydantic
import pytest
from sqlalchemy.engine import make_url

from syncd import purposes
from syncd.config import Config, FolderConfig, load_config
from syncd.errors import ConfigError

FOLDER = """
[[folders]]
path = "data"
purpose = "fine-tune"
"""


def write_config(directory: Path, text: str) -> Path:
    """Write ``text`` as ``config.toml`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(directory: Path, text: str, environ: Mapping[str, str] | None = None) -> Config:
    """Write and load a config, with an empty environment unless one is given."""
    return load_config(write_config(directory, text), environ=environ or {})


def problems(directory: Path, text: str) -> list[str]:
    """The lines of the ConfigError that loading ``text`` raises, without the file prefix.

    Also checks what every message promises: each line names the file, and nothing of
    pydantic's own wording (type names, documentation URLs) leaks through.
    """
    path = write_config(directory, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    message = str(raised.value)
    assert "pydantic" not in message
    lines = message.splitlines()
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


class TestValidConfig:
    def test_minimal_config_gets_documented_defaults(self, tmp_path: Path) -> None:
        """Only a folder given: every other key takes the default the docs promise."""
        config = load(tmp_path, FOLDER)
        assert config.api.server_url == "https://api.mistral.ai"
        assert not config.api.is_embedded
        assert config.api.api_key_env == "MISTRAL_API_KEY"
        assert config.api.api_key_file is None
        assert config.api.timeout == timedelta(minutes=1)
        assert config.api.connect_timeout == timedelta(seconds=10)
        assert config.api.timeout_per_mb == timedelta(seconds=10)
        assert (config.api.concurrency, config.api.max_attempts) == (4, 8)
        assert config.watch.settle == timedelta(seconds=2)
        assert config.watch.settle_max == timedelta(minutes=10)
        assert config.watch.rescan_interval == timedelta(minutes=15)
        assert config.watch.use_polling is False
        assert config.retention.schedule_interval == timedelta(hours=1)
        assert config.retention.schedule_cron is None
        assert config.retention.dry_run is False
        assert config.retention.max_deletes_per_run == 100
        assert (config.log.format, config.log.level) == ("auto", "info")
        assert config.metrics.listen is None
        assert config.metrics.address is None
        assert config.warnings == ()

    def test_folder_defaults_follow_its_purpose(self, tmp_path: Path) -> None:
        """A folder's include comes from its purpose, its name from its path's last component."""
        config = load(tmp_path, '[[folders]]\npath = "scans/incoming"\npurpose = "ocr"\n')
        (folder,) = config.folders
        assert folder.path == tmp_path / "scans" / "incoming"
        assert folder.name == "incoming"
        assert folder.include == purposes.rule_for("ocr").default_include
        assert "*.pdf" in folder.include
        assert folder.exclude == purposes.DEFAULT_EXCLUDE
        assert folder.exclude_defaults is True
        assert folder.validation == "strict"
        assert folder.on_change == "replace"
        assert folder.retention is None
        assert folder.keep_current is False

    def test_every_folder_key_is_read(self, tmp_path: Path) -> None:
        """Explicit folder keys override the defaults and come back resolved."""
        config = load(
            tmp_path,
            """
            [[folders]]
            path = "data"
            name = "training"
            purpose = "batch"
            include = ["*.jsonl", "*.json"]
            exclude = ["drafts/*"]
            validate = "basic"
            on_change = "keep"
            retention = "1d12h"
            keep_current = true
            """,
        )
        (folder,) = config.folders
        assert folder.name == "training"
        assert folder.include == ("*.jsonl", "*.json")
        assert folder.exclude == (*purposes.DEFAULT_EXCLUDE, "drafts/*")
        assert folder.validation == "basic"
        assert folder.on_change == "keep"
        assert folder.retention == timedelta(days=1, hours=12)
        assert folder.keep_current is True

    def test_exclude_defaults_false_keeps_only_the_given_excludes(self, tmp_path: Path) -> None:
        """With exclude_defaults = false the built-in globs are not added."""
        config = load(
            tmp_path,
            FOLDER + 'exclude_defaults = false\nexclude = ["*.bak"]\n',
        )
        assert config.folders[0].exclude == ("*.bak",)

    def test_sections_and_values_are_read(self, tmp_path: Path) -> None:
        """Every section's keys are read: durations, numbers, booleans, cron and address."""
        config = load(
            tmp_path,
            """
            [api]
            server_url = "https://api.mistral.ai/"
            api_key_env = "SYNCD_KEY"
            timeout = "1m30s"
            concurrency = 64
            max_attempts = 1
            [watch]
            settle = "500ms"
            settle_max = "1h"
            rescan_interval = "1s"
            use_polling = true
            [retention]
            schedule = "0  3 * *   mon-fri"
            dry_run = true
            max_deletes_per_run = 0
            [log]
            format = "JSON"
            level = "Debug"
            [metrics]
            listen = "[::1]:9108"
            """
            + FOLDER,
        )
        assert config.api.server_url == "https://api.mistral.ai"
        assert not config.api.is_embedded
        assert config.api.api_key_env == "SYNCD_KEY"
        assert config.api.timeout == timedelta(seconds=90)
        assert (config.api.concurrency, config.api.max_attempts) == (64, 1)
        assert config.watch.settle == timedelta(milliseconds=500)
        assert config.watch.settle_max == timedelta(hours=1)
        assert config.watch.rescan_interval == timedelta(seconds=1)
        assert config.watch.use_polling is True
        assert config.retention.schedule_cron == "0 3 * * mon-fri"
        assert config.retention.schedule_interval is None
        assert config.retention.dry_run is True
        assert config.retention.max_deletes_per_run == 0
        assert (config.log.format, config.log.level) == ("json", "debug")
        assert config.metrics.address == ("::1", 9108)

    @pytest.mark.parametrize(
        "url", ["http://localhost:8080", "http://127.0.0.1:9000/", "http://[::1]:1234"]
    )
    def test_plain_http_is_accepted_for_loopback(self, tmp_path: Path, url: str) -> None:
        """http:// to a loopback host (a local emulator) needs no TLS."""
        config = load(tmp_path, f'[api]\nserver_url = "{url}"\n' + FOLDER)
        assert config.api.server_url == url.rstrip("/")

    def test_models_are_frozen(self, tmp_path: Path) -> None:
        """A loaded config cannot be changed by the components that read it."""
        config = load(tmp_path, FOLDER)
        with pytest.raises(pydantic.ValidationError):
            config.api.concurrency = 10

    def test_unknown_purpose_allowed_explicitly_is_a_warning(self, tmp_path: Path) -> None:
        """The API's purpose list is open: with allow_unknown_purpose an unknown one loads,
        with a warning naming it."""
        config = load(
            tmp_path,
            '[[folders]]\npath = "data"\npurpose = "agentic_safety"\n'
            "allow_unknown_purpose = true\n",
        )
        assert config.folders[0].include == ("*",)
        (warning,) = config.warnings
        assert warning.startswith("folders[0].purpose: unknown purpose 'agentic_safety'")
        assert "fine-tune" in warning

    @pytest.mark.parametrize(
        ("typo", "meant"),
        [("finetune", "fine-tune"), ("fine_tune", "fine-tune"), ("Batch", "batch"), ("ocr ", None)],
    )
    def test_unknown_purpose_is_an_error_with_a_did_you_mean(
        self, tmp_path: Path, typo: str, meant: str | None
    ) -> None:
        """A typo in purpose is refused, naming the purpose it most likely meant."""
        (line,) = problems(tmp_path, f'[[folders]]\npath = "data"\npurpose = "{typo}"\n')
        assert line.startswith("folders[0].purpose:")
        if meant is None:
            assert "whitespace" in line
        else:
            assert f'unknown purpose {typo!r}: did you mean "{meant}"?' in line
            assert "allow_unknown_purpose = true" in line

    def test_state_database_inside_a_folder_is_a_warning(self, tmp_path: Path) -> None:
        """A state database inside a watched folder is flagged."""
        config = load(tmp_path, '[state]\nurl = "sqlite:///data/state.db"\n' + FOLDER)
        (warning,) = config.warnings
        assert warning.startswith("state.url:")
        assert "inside folders[0]" in warning

    def test_folder_model_can_be_built_directly(self, tmp_path: Path) -> None:
        """Other components' tests can build a FolderConfig in Python with the same defaults."""
        folder = FolderConfig(path=tmp_path / "in", purpose="batch", validate="off")
        assert folder.name == "in"
        assert folder.include == ("*.jsonl",)
        assert folder.exclude == purposes.DEFAULT_EXCLUDE
        assert folder.validation == "off"


class TestPathResolution:
    def test_relative_folder_path_resolves_against_the_config_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Relative paths are relative to the config file, not to the working directory."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        config = load(tmp_path / "etc", '[[folders]]\npath = "../data/./ft"\npurpose = "ocr"\n')
        assert config.folders[0].path == tmp_path / "data" / "ft"

    def test_absolute_and_home_paths(self, tmp_path: Path) -> None:
        """Absolute paths stay; ``~`` expands to the home directory."""
        config = load(
            tmp_path,
            f'[[folders]]\npath = "{tmp_path / "abs"}"\npurpose = "ocr"\n'
            '[[folders]]\npath = "~/syncd-data"\npurpose = "ocr"\n',
        )
        assert config.folders[0].path == tmp_path / "abs"
        assert config.folders[1].path == Path.home().resolve() / "syncd-data"

    def test_relative_sqlite_url_resolves_against_the_config_directory(
        self, tmp_path: Path
    ) -> None:
        """``sqlite:///var/state.db`` is ``<config dir>/var/state.db``; emulator data beside it."""
        config = load(tmp_path, '[state]\nurl = "sqlite:///var/state.db"\n' + FOLDER)
        assert config.state.database_path == tmp_path / "var" / "state.db"
        assert config.state.database_url == f"sqlite:///{tmp_path}/var/state.db"
        assert config.state.embedded_data_dir == tmp_path / "var" / "emulator"

    def test_absolute_sqlite_url_is_kept(self, tmp_path: Path) -> None:
        """Four slashes mean an absolute path."""
        config = load(tmp_path, f'[state]\nurl = "sqlite:///{tmp_path}/db/s.db"\n' + FOLDER)
        assert config.state.database_path == tmp_path / "db" / "s.db"

    def test_default_state_url_without_state_directory(self, tmp_path: Path) -> None:
        """With no url and no $STATE_DIRECTORY, state goes to /var/lib/syncd."""
        config = load(tmp_path, FOLDER)
        assert config.state.database_url == "sqlite:////var/lib/syncd/state.db"
        assert config.state.database_path == Path("/var/lib/syncd/state.db")
        assert config.state.embedded_data_dir == Path("/var/lib/syncd/emulator")

    def test_state_directory_sets_the_default_database(self, tmp_path: Path) -> None:
        """systemd's $STATE_DIRECTORY (first entry) holds the database when no url is set."""
        state_dir = tmp_path / "state"
        config = load(tmp_path, FOLDER, environ={"STATE_DIRECTORY": f"{state_dir}:/var/lib/b"})
        assert config.state.database_path == state_dir / "state.db"
        assert config.state.embedded_data_dir == state_dir / "emulator"

    def test_explicit_url_wins_over_state_directory(self, tmp_path: Path) -> None:
        """An explicit [state] url is used even when $STATE_DIRECTORY is set."""
        config = load(
            tmp_path,
            '[state]\nurl = "sqlite:///mine.db"\n' + FOLDER,
            environ={"STATE_DIRECTORY": str(tmp_path / "ignored")},
        )
        assert config.state.database_path == tmp_path / "mine.db"

    def test_non_sqlite_url_has_no_path_and_gets_its_password_from_the_file(
        self, tmp_path: Path
    ) -> None:
        """A server database has no file; password_file (beside the config without
        $CREDENTIALS_DIRECTORY) puts the password in database_url only, never on display."""
        (tmp_path / "db-password").write_text("hunter22:@/x\n")
        config = load(
            tmp_path,
            '[state]\nurl = "postgresql+psycopg://syncd@db.internal/syncd?sslmode=verify-full"\n'
            'password_file = "db-password"\n' + FOLDER,
            environ={"STATE_DIRECTORY": str(tmp_path / "st")},
        )
        state = config.state
        assert state.database_path is None
        assert state.url == "postgresql+psycopg://syncd@db.internal/syncd?sslmode=verify-full"
        assert state.password_file is not None
        assert state.password_file.path == tmp_path / "db-password"
        assert state.password_file.value.get_secret_value() == "hunter22:@/x"
        parsed = make_url(state.database_url)
        assert parsed.password == "hunter22:@/x"
        assert dict(parsed.query) == {"sslmode": "verify-full"}
        assert state.display_url == (
            "postgresql+psycopg://syncd:***@db.internal/syncd?sslmode=verify-full"
        )
        for shown in (repr(config), str(config), config.model_dump_json(), repr(state)):
            assert "hunter22" not in shown
        assert state.embedded_data_dir == tmp_path / "st" / "emulator"

    def test_relative_password_file_resolves_against_credentials_directory(
        self, tmp_path: Path
    ) -> None:
        """With $CREDENTIALS_DIRECTORY (systemd LoadCredential) the password file is in it."""
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "db-password").write_text("from-credentials-dir\n")
        (tmp_path / "db-password").write_text("beside-the-config\n")
        config = load(
            tmp_path,
            '[state]\nurl = "postgresql+psycopg://syncd@db/syncd"\n'
            'password_file = "db-password"\n' + FOLDER,
            environ={"CREDENTIALS_DIRECTORY": str(credentials)},
        )
        assert config.state.password_file is not None
        assert config.state.password_file.path == credentials / "db-password"
        assert make_url(config.state.database_url).password == "from-credentials-dir"

    def test_password_file_keeps_all_but_the_final_line_break(self, tmp_path: Path) -> None:
        """Spaces inside and around a password are part of it; only the final newline goes."""
        (tmp_path / "pw").write_bytes(b" pass word \r\n")
        config = load(
            tmp_path,
            '[state]\nurl = "postgresql+psycopg://syncd@db/syncd"\npassword_file = "pw"\n' + FOLDER,
        )
        assert make_url(config.state.database_url).password == " pass word "

    def test_without_password_file_the_url_is_used_as_written(self, tmp_path: Path) -> None:
        """No password_file: nothing is added, so libpq's PGPASSFILE/~/.pgpass/PGPASSWORD and
        the URL's own TLS options reach the driver untouched."""
        url = (
            "postgresql+psycopg://syncd@db.example:6432/syncd?sslmode=verify-full"
            "&sslrootcert=/etc/syncd/ca.pem&sslcert=/etc/syncd/c.pem&sslkey=/etc/syncd/c.key"
        )
        config = load(tmp_path, f'[state]\nurl = "{url}"\n' + FOLDER)
        assert config.state.password_file is None
        assert config.state.database_url == url
        assert config.state.display_url == url

    def test_in_memory_sqlite_has_no_path(self, tmp_path: Path) -> None:
        """``sqlite://`` (in memory) has no database file."""
        config = load(tmp_path, '[state]\nurl = "sqlite://"\n' + FOLDER)
        assert config.state.database_path is None

    def test_embedded_data_dir_can_be_set(self, tmp_path: Path) -> None:
        """An explicit embedded_data_dir resolves against the config directory."""
        config = load(tmp_path, '[state]\nembedded_data_dir = "emu"\n' + FOLDER)
        assert config.state.embedded_data_dir == tmp_path / "emu"

    def test_relative_api_key_file_resolves_against_credentials_directory(
        self, tmp_path: Path
    ) -> None:
        """With $CREDENTIALS_DIRECTORY (systemd LoadCredential) a relative key file is in it."""
        credentials = tmp_path / "credentials"
        config = load(
            tmp_path,
            '[api]\napi_key_file = "mistral-api-key"\n' + FOLDER,
            environ={"CREDENTIALS_DIRECTORY": str(credentials)},
        )
        assert config.api.api_key_file == credentials / "mistral-api-key"

    def test_relative_api_key_file_resolves_against_config_dir_otherwise(
        self, tmp_path: Path
    ) -> None:
        """Without $CREDENTIALS_DIRECTORY a relative key file is beside the config file."""
        config = load(tmp_path, '[api]\napi_key_file = "secrets/key"\n' + FOLDER)
        assert config.api.api_key_file == tmp_path / "secrets" / "key"

    def test_absolute_api_key_file_ignores_credentials_directory(self, tmp_path: Path) -> None:
        """An absolute key file path is used as written."""
        config = load(
            tmp_path,
            f'[api]\napi_key_file = "{tmp_path}/k"\n' + FOLDER,
            environ={"CREDENTIALS_DIRECTORY": "/run/credentials/syncd.service"},
        )
        assert config.api.api_key_file == tmp_path / "k"


class TestUnknownKeys:
    def test_unknown_top_level_key(self, tmp_path: Path) -> None:
        """A misspelt table is named, with a suggestion and the allowed keys."""
        assert problems(tmp_path, "[wach]\nsettle = '1s'\n" + FOLDER) == [
            "wach: unknown key; did you mean 'watch'? allowed here: "
            "api, folders, log, metrics, node, results, retention, state, watch"
        ]

    def test_unknown_key_in_a_section(self, tmp_path: Path) -> None:
        """A misspelt key in a table is named by its full path."""
        assert problems(tmp_path, "[watch]\nsettel = '1s'\n" + FOLDER) == [
            "watch.settel: unknown key; did you mean 'settle'? allowed here: "
            "rescan_interval, settle, settle_max, timestamp_granularity, use_polling"
        ]

    def test_unknown_key_in_a_folder(self, tmp_path: Path) -> None:
        """A misspelt folder key names the folder's index."""
        (line,) = problems(tmp_path, FOLDER + FOLDER.replace("data", "other") + "purpse = 'x'\n")
        assert line.startswith("folders[1].purpse: unknown key; did you mean 'purpose'?")
        assert "validate" in line

    def test_unknown_key_value_is_never_echoed(self, tmp_path: Path) -> None:
        """An unknown key may hold a secret under another name: its value is not repeated."""
        (line,) = problems(tmp_path, "[api]\napikey = 'sk-live-0123456789'\n" + FOLDER)
        assert line.startswith("api.apikey: unknown key")
        assert "sk-live" not in line


class TestBadValues:
    @pytest.mark.parametrize(
        ("snippet", "expected"),
        [
            ("[api]\nconcurrency = '4'", "api.concurrency: expected an integer (got '4')"),
            ("[api]\nconcurrency = 2.5", "api.concurrency: expected an integer (got 2.5)"),
            (
                "[watch]\nuse_polling = 'yes'",
                "watch.use_polling: expected true or false (got 'yes')",
            ),
            ("[api]\nserver_url = 3", "api.server_url: expected a string (got 3)"),
            ("api = 3", "api: expected a table (got 3)"),
            ("[metrics]\nlisten = 9108", "metrics.listen: expected a string (got 9108)"),
        ],
    )
    def test_wrong_type(self, tmp_path: Path, snippet: str, expected: str) -> None:
        """A value of the wrong TOML type names the expected type and the given value."""
        assert problems(tmp_path, snippet + "\n" + FOLDER) == [expected]

    def test_wrong_type_in_folder(self, tmp_path: Path) -> None:
        """A string where an array of globs belongs is named with the folder index."""
        assert problems(tmp_path, FOLDER + 'include = "*.jsonl"\n') == [
            "folders[0].include: expected an array (got '*.jsonl')"
        ]

    def test_bad_duration_names_the_accepted_forms(self, tmp_path: Path) -> None:
        """A duration that does not parse lists the forms that would."""
        (line,) = problems(tmp_path, "[watch]\nsettle = '2 minutes'\n" + FOLDER)
        assert line.startswith("watch.settle: expected a duration such as")
        assert '"500ms", "2s", "5m", "1h", "30d" or "1h30m"' in line
        assert line.endswith("(got '2 minutes')")

    def test_duration_as_bare_number_suggests_a_unit(self, tmp_path: Path) -> None:
        """``timeout = 30`` is refused (seconds or minutes?) with a suggestion."""
        (line,) = problems(tmp_path, "[api]\ntimeout = 30\n" + FOLDER)
        assert line.startswith("api.timeout: expected a duration")
        assert 'did you mean "30s"?' in line
        assert line.endswith("(got 30)")

    @pytest.mark.parametrize(
        ("snippet", "expected"),
        [
            ("[watch]\nrescan_interval = '500ms'", "watch.rescan_interval: must be at least 1s"),
            ("[api]\ntimeout = '0s'", "api.timeout: must be at least 1s"),
            ("[watch]\nsettle_max = '0s'", "watch.settle_max: must be longer than 0s"),
        ],
    )
    def test_too_short_durations(self, tmp_path: Path, snippet: str, expected: str) -> None:
        """Durations below their minimum say the minimum."""
        (line,) = problems(tmp_path, snippet + "\n" + FOLDER)
        assert line.startswith(expected)

    def test_settle_max_shorter_than_settle(self, tmp_path: Path) -> None:
        """settle_max must cover settle; both values are shown."""
        assert problems(tmp_path, "[watch]\nsettle = '20m'\nsettle_max = '1m'\n" + FOLDER) == [
            "watch: settle_max (1m) must not be shorter than settle (20m)"
        ]

    def test_folder_retention_must_be_positive(self, tmp_path: Path) -> None:
        """A zero retention would delete everything at once: refused."""
        assert problems(tmp_path, FOLDER + "retention = '0s'\n") == [
            "folders[0].retention: must be longer than 0s (got '0s')"
        ]

    @pytest.mark.parametrize(
        ("schedule", "expected"),
        [
            ("61 3 * * *", "retention.schedule: invalid cron expression: "),
            ("0 3 * *", "retention.schedule: expected an interval ("),
            ("daily", "retention.schedule: expected an interval ("),
            ("0 3 * * 0", "retention.schedule: cron day-of-week must use names"),
            ("0s", "retention.schedule: an interval schedule must be at least 1s"),
        ],
    )
    def test_bad_schedule(self, tmp_path: Path, schedule: str, expected: str) -> None:
        """A bad retention schedule names both accepted forms, or the bad cron field."""
        (line,) = problems(tmp_path, f"[retention]\nschedule = '{schedule}'\n" + FOLDER)
        assert line.startswith(expected)
        assert line.endswith(f"(got '{schedule}')")

    @pytest.mark.parametrize(
        ("snippet", "expected"),
        [
            (
                "[retention]\nmax_deletes_per_run = -1",
                "retention.max_deletes_per_run: must be at least 0 (got -1)",
            ),
            ("[api]\nmax_attempts = 0", "api.max_attempts: must be between 1 and 100 (got 0)"),
            ("[api]\nconcurrency = -4", "api.concurrency: must be between 1 and 64 (got -4)"),
            ("[api]\nconcurrency = 65", "api.concurrency: must be between 1 and 64 (got 65)"),
        ],
    )
    def test_numbers_out_of_range(self, tmp_path: Path, snippet: str, expected: str) -> None:
        """Negative and out-of-range numbers name the allowed range."""
        assert problems(tmp_path, snippet + "\n" + FOLDER) == [expected]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "[log]\nformat = 'xml'\n" + FOLDER,
                "log.format: must be one of 'json', 'console' or 'auto' (got 'xml')",
            ),
            (
                "[log]\nlevel = 'verbose'\n" + FOLDER,
                "log.level: must be one of 'debug', 'info', 'warning' or 'error' (got 'verbose')",
            ),
            (
                FOLDER + "validate = 'lenient'\n",
                "folders[0].validate: must be one of 'strict', 'basic' or 'off' (got 'lenient')",
            ),
            (
                FOLDER + "on_change = 'delete'\n",
                "folders[0].on_change: must be one of 'replace' or 'keep' (got 'delete')",
            ),
        ],
    )
    def test_invalid_choices(self, tmp_path: Path, text: str, expected: str) -> None:
        """A value outside a fixed set lists the set."""
        assert problems(tmp_path, text) == [expected]

    @pytest.mark.parametrize(
        ("listen", "expected"),
        [
            ("localhost", 'expected "host:port"'),
            (":9108", 'expected "host:port"'),
            ("127.0.0.1:70000", "the port must be a number between 0 and 65535"),
            ("127.0.0.1:http", "the port must be a number between 0 and 65535"),
            ("::1:9108", "put an IPv6 address in brackets"),
            ("[nothost]:9108", "in brackets is not an IPv6 address"),
        ],
    )
    def test_bad_listen_address(self, tmp_path: Path, listen: str, expected: str) -> None:
        """A metrics address that is not host:port with a valid port is refused."""
        (line,) = problems(tmp_path, f"[metrics]\nlisten = '{listen}'\n" + FOLDER)
        assert line.startswith("metrics.listen: ")
        assert expected in line
        assert line.endswith(f"(got '{listen}')")

    def test_api_key_in_toml_is_refused_without_echoing_it(self, tmp_path: Path) -> None:
        """Keys never live in the TOML: the message points elsewhere and never shows the key."""
        lines = problems(tmp_path, "[api]\napi_key = 'sk-very-secret-0123'\n" + FOLDER)
        (line,) = lines
        assert line.startswith("api.api_key: API keys never live in the config file")
        assert "api.api_key_env" in line
        assert "api.api_key_file" in line
        assert "sk-very-secret" not in line

    def test_top_level_api_key_is_refused_too(self, tmp_path: Path) -> None:
        """A key at the top level gets the same message, again without its value."""
        (line,) = problems(tmp_path, "api_key = 'sk-top-secret-0123'\n" + FOLDER)
        assert line.startswith("api_key: API keys never live in the config file")
        assert "sk-top-secret" not in line

    def test_plain_http_to_a_remote_host_is_refused(self, tmp_path: Path) -> None:
        """TLS must stay on for anything that leaves the machine."""
        (line,) = problems(tmp_path, "[api]\nserver_url = 'http://api.mistral.ai'\n" + FOLDER)
        assert line.startswith("api.server_url: plain http:// is allowed only for loopback")
        assert "https://" in line
        assert line.endswith("(got 'http://api.mistral.ai')")

    @pytest.mark.parametrize("url", ["ftp://example.com", "api.mistral.ai", "https://"])
    def test_server_url_must_be_http_or_embedded(self, tmp_path: Path, url: str) -> None:
        """Anything but "embedded" or an http(s) URL with a host is refused."""
        (line,) = problems(tmp_path, f"[api]\nserver_url = '{url}'\n" + FOLDER)
        assert line.startswith('api.server_url: expected "embedded" or an http(s) URL')

    def test_server_url_with_credentials_is_refused_without_echo(self, tmp_path: Path) -> None:
        """A URL with a password is refused and never repeated."""
        (line,) = problems(
            tmp_path, "[api]\nserver_url = 'https://me:pa55word@api.mistral.ai'\n" + FOLDER
        )
        assert line.startswith("api.server_url: server_url must not contain a user name")
        assert "pa55word" not in line

    def test_bad_state_url_is_refused_without_echo(self, tmp_path: Path) -> None:
        """An unparsable database URL is refused; it may hold a password, so it is not shown."""
        (line,) = problems(tmp_path, "[state]\nurl = 'not a url :// s3cret'\n" + FOLDER)
        assert line.startswith("state.url: not a SQLAlchemy database URL")
        assert "s3cret" not in line

    @pytest.mark.parametrize(
        "url",
        [
            "postgresql+psycopg://syncd:hunter22-secret@db.example/syncd",
            "postgresql+psycopg://syncd:hunter22-secret@db.example/syncd?sslmode=require",
            "postgresql+psycopg://syncd@db.example/syncd?password=hunter22-secret",
        ],
        ids=["userinfo", "userinfo-with-tls", "query"],
    )
    def test_password_in_state_url_is_refused_without_echo(self, tmp_path: Path, url: str) -> None:
        """Database passwords never live in the TOML, like API keys: refused, never repeated."""
        (line,) = problems(tmp_path, f"[state]\nurl = '{url}'\n" + FOLDER)
        assert line.startswith("state.url: database passwords never live in the config file")
        assert "state.password_file" in line
        assert "hunter22" not in line
        assert "db.example" not in line  # the URL is not shown at all

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            (None, "cannot read {path}: No such file or directory"),
            (b"", "{path} is empty"),
            (b" \n", "{path} is empty"),
            (b"hunter22-secret\nsecond-line\n", "{path} must hold the password alone, on one line"),
            (b"hunter22-\x00secret", "{path} holds a NUL character"),
            (b"hunter22-\xff-secret", "{path} is not UTF-8 text"),
        ],
        ids=["missing", "empty", "blank", "two-lines", "nul", "not-utf8"],
    )
    def test_bad_password_file_names_key_and_path_never_content(
        self, tmp_path: Path, content: bytes | None, expected: str
    ) -> None:
        """A password file that cannot serve is a config error naming the key and the file."""
        password_file = tmp_path / "db-password"
        if content is not None:
            password_file.write_bytes(content)
        (line,) = problems(
            tmp_path,
            "[state]\nurl = 'postgresql+psycopg://syncd@db/syncd'\n"
            "password_file = 'db-password'\n" + FOLDER,
        )
        assert line.startswith(f"state.password_file: {expected.format(path=password_file)}")
        assert "hunter22" not in line
        assert "second-line" not in line

    def test_unreadable_password_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A password "file" that is a directory is refused with the reason."""
        (tmp_path / "pw").mkdir()
        (line,) = problems(
            tmp_path,
            "[state]\nurl = 'postgresql+psycopg://syncd@db/syncd'\npassword_file = 'pw'\n" + FOLDER,
        )
        assert line == f"state.password_file: cannot read {tmp_path / 'pw'}: Is a directory"

    def test_password_file_with_sqlite_is_refused(self, tmp_path: Path) -> None:
        """SQLite has no password: a password_file beside it is a mistake, said so."""
        (tmp_path / "pw").write_text("hunter22-secret\n")
        (line,) = problems(tmp_path, "[state]\npassword_file = 'pw'\n" + FOLDER)
        assert line.startswith("state.password_file: a SQLite database has no password")

    def test_purpose_longer_than_the_database_column_is_refused(self, tmp_path: Path) -> None:
        """The state store keeps a purpose in 32 characters: a longer one is a config error
        (PostgreSQL would refuse every write of the folder's rows)."""
        longest = "p" * 32
        allowed = FOLDER + "allow_unknown_purpose = true\n"
        config = load(tmp_path, allowed.replace("fine-tune", longest))
        assert config.folders[0].purpose == longest
        (line,) = problems(tmp_path, FOLDER.replace("fine-tune", longest + "q"))
        assert line.startswith(
            "folders[0].purpose: must be at most 32 characters (the state database's limit)"
        )

    def test_bad_api_key_env_name(self, tmp_path: Path) -> None:
        """api_key_env must be a variable name, not a key."""
        (line,) = problems(tmp_path, "[api]\napi_key_env = 'MY-KEY'\n" + FOLDER)
        assert line.startswith("api.api_key_env: expected an environment variable name")

    def test_empty_strings_and_lists_are_refused(self, tmp_path: Path) -> None:
        """An empty purpose, name or include list is refused, each on its own line."""
        text = '[[folders]]\npath = "data"\npurpose = ""\nname = ""\ninclude = []\n'
        assert problems(tmp_path, text) == [
            "folders[0].name: must not be empty",
            "folders[0].purpose: must not be empty",
            "folders[0].include: must not be empty",
        ]


class TestFolderSet:
    def test_missing_folders(self, tmp_path: Path) -> None:
        """A config without any [[folders]] table says one is needed."""
        assert problems(tmp_path, "[api]\n") == [
            "folders: at least one [[folders]] table is required"
        ]

    def test_empty_folders_array(self, tmp_path: Path) -> None:
        """``folders = []`` gets the same message."""
        assert problems(tmp_path, "folders = []\n") == [
            "folders: at least one [[folders]] table is required"
        ]

    def test_folder_without_path_or_purpose(self, tmp_path: Path) -> None:
        """Both required folder keys are named, and no misleading 'need a folder' line."""
        assert problems(tmp_path, "[[folders]]\nname = 'x'\n") == [
            "folders[0].path: required key is missing",
            "folders[0].purpose: required key is missing",
        ]

    def test_duplicate_folder_paths(self, tmp_path: Path) -> None:
        """The same directory twice (spelt differently) is refused, naming both entries."""
        text = FOLDER + '[[folders]]\npath = "./other/../data"\npurpose = "batch"\nname = "b"\n'
        assert problems(tmp_path, text) == [
            f"folders: folders[0].path and folders[1].path are the same directory "
            f"({tmp_path / 'data'}); list each folder once"
        ]

    def test_nested_folder_paths(self, tmp_path: Path) -> None:
        """A folder inside another would upload its files twice: refused."""
        text = '[[folders]]\npath = "data/inner"\npurpose = "ocr"\n' + FOLDER
        assert problems(tmp_path, text) == [
            f"folders: folders[0].path ({tmp_path / 'data' / 'inner'}) is inside "
            f"folders[1].path ({tmp_path / 'data'}); nested folders would upload the same "
            "files twice"
        ]

    def test_sibling_with_common_prefix_is_not_nested(self, tmp_path: Path) -> None:
        """``data`` and ``data2`` are siblings, not nested."""
        config = load(tmp_path, FOLDER + '[[folders]]\npath = "data2"\npurpose = "batch"\n')
        assert [f.name for f in config.folders] == ["data", "data2"]

    def test_duplicate_folder_names(self, tmp_path: Path) -> None:
        """Two folders with the same name are refused."""
        text = FOLDER + '[[folders]]\npath = "x/data"\npurpose = "batch"\n'
        assert problems(tmp_path, text) == [
            "folders: folders[0].name and folders[1].name are both 'data'; "
            "give each folder a distinct name"
        ]


class TestFileProblems:
    def test_missing_config_file(self, tmp_path: Path) -> None:
        """A missing file names the path and how to pass another."""
        path = tmp_path / "nope.toml"
        with pytest.raises(ConfigError) as raised:
            load_config(path, environ={})
        assert str(raised.value) == (
            f"{path}: config file not found (pass -c PATH or set SYNCD_CONFIG)"
        )

    def test_directory_instead_of_config_file(self, tmp_path: Path) -> None:
        """A directory is not a config file."""
        with pytest.raises(ConfigError, match="is a directory"):
            load_config(tmp_path, environ={})

    def test_config_file_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are reported with their offset."""
        path = tmp_path / "config.toml"
        path.write_bytes(b"[api]\n\xff\n")
        with pytest.raises(ConfigError, match=r"not UTF-8 text \(bad byte at offset 6\)") as raised:
            load_config(path, environ={})
        assert raised.value.__context__ is None  # the decode error would carry the bytes

    def test_toml_syntax_error_names_line_and_column(self, tmp_path: Path) -> None:
        """A TOML syntax error says where it is."""
        path = write_config(tmp_path, "[api]\nconcurrency = 4\nserver_url \n")
        with pytest.raises(ConfigError) as raised:
            load_config(path, environ={})
        message = str(raised.value)
        assert message.startswith(f"{path}: invalid TOML: ")
        assert "line 3, column" in message

    def test_all_problems_are_reported_at_once(self, tmp_path: Path) -> None:
        """Several bad values give one line each, in one error."""
        lines = problems(
            tmp_path,
            "[api]\napi_key = 'k-000000'\nconcurrency = 0\n[log]\nlevel = 'loud'\n"
            "[[folders]]\npath = 'data'\npurpose = 'ocr'\nretention = 'forever'\n",
        )
        assert [line.split(":")[0] for line in lines] == [
            "api.api_key",
            "api.concurrency",
            "log.level",
            "folders[0].retention",
        ]

    def test_error_is_not_chained_to_pydantic(self, tmp_path: Path) -> None:
        """The ConfigError hides pydantic's own error, so tracebacks show no pydantic URLs."""
        path = write_config(tmp_path, "[api]\nconcurrency = 0\n" + FOLDER)
        with pytest.raises(ConfigError) as raised:
            load_config(path, environ={})
        assert raised.value.__cause__ is None
        assert raised.value.__context__ is None
