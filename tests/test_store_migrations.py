"""Alembic migrations: they build exactly the ORM schema, run once, and guard the revision.

The tests that touch a database run on a real SQLite file and on a real PostgreSQL database
(``db_url``).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, inspect, text

from syncd.errors import StoreError
from syncd.store import connect, fresh_schema, migrate, open_store
from syncd.store.schema import Base

EXPECTED_TABLES = {
    "alembic_version",
    "audit",
    "job_results",
    "jobs",
    "local_files",
    "meta",
    "nodes",
    "remote_files",
    "result_files",
}


def table_names(url: str) -> set[str]:
    """The tables in the database at ``url``, read by a plain engine (not syncd's)."""
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def execute(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Run one SQL statement behind syncd's back, committed; its rows, if it returns any."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def schema_differences(url: str) -> list[Any]:
    """What Alembic's autogenerate sees between the ORM models and the database at ``url``."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_are_found_in_the_checkout() -> None:
    """Without an installed wheel, the repository's migrations/ folder is used."""
    found = migrate.migrations_dir()
    assert (found / "env.py").is_file()
    assert found.name in ("migrations", "_migrations")


def test_head_revision_constant_matches_the_scripts() -> None:
    """The constant that lets a current database skip Alembic is the scripts' real head."""
    assert migrate.head_revision() == migrate.HEAD_REVISION


def test_a_current_database_is_opened_without_importing_alembic(db_url: str) -> None:
    """Opening a migrated store stays off Alembic (and the Mako/Pygments it imports)."""
    url = db_url
    migrate.upgrade(url)
    code = (
        "import sys\n"
        "from syncd.store import open_store\n"
        f"open_store({url!r}).dispose()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "[]"


def test_the_recorded_schema_is_what_the_migrations_build(tmp_path: Path) -> None:
    """New SQLite files get the schema from a recorded script: every migration replayed on a
    file leaves exactly that script's statements, at the head revision (after a new migration,
    ``make schema`` records it again)."""
    url = f"sqlite:///{tmp_path / 'replayed.db'}"
    assert migrate.upgrade(url, replay=True).after == migrate.HEAD_REVISION
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            replayed = fresh_schema.dump(connection, migrate.HEAD_REVISION)
    finally:
        engine.dispose()
    assert replayed == fresh_schema.recorded(), "the migrations changed: run `make schema`"
    assert fresh_schema.revision_of(replayed) == migrate.HEAD_REVISION


def test_a_new_sqlite_file_gets_the_recorded_schema_without_alembic(tmp_path: Path) -> None:
    """A first start on a new file creates the schema without importing Alembic (a third of a
    second of CPU), and the file is then exactly what the migrations make of an empty one."""
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys\n"
        "from syncd.store import migrate\n"
        f"result = migrate.upgrade({fresh!r})\n"
        "print(result.before, result.after)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert shown == [f"None {migrate.HEAD_REVISION}", "[]"]
    replayed = f"sqlite:///{tmp_path / 'replayed.db'}"
    migrate.upgrade(replayed, replay=True)
    master = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
    assert execute(fresh, master) == execute(replayed, master)
    assert execute(fresh, "SELECT version_num FROM alembic_version") == [(migrate.HEAD_REVISION,)]
    assert schema_differences(fresh) == []


def test_a_database_with_several_revisions_is_refused_by_name(db_url: str) -> None:
    """Two rows in alembic_version (branches syncd never makes): a clear error naming the file."""
    migrate.upgrade(db_url)
    execute(db_url, "INSERT INTO alembic_version VALUES ('0001')")
    with pytest.raises(StoreError, match="several schema revisions") as raised:
        open_store(db_url).dispose()
    assert connect.parse_target(db_url).display in str(raised.value)


def test_upgrade_from_empty_reaches_head(db_url: str) -> None:
    """An empty database is migrated to head and reports where it came from."""
    result = migrate.upgrade(db_url)
    assert result.before is None
    assert result.after == migrate.head_revision()
    assert result.changed
    assert result.database == connect.parse_target(db_url).display
    assert migrate.current_revision(db_url) == migrate.head_revision()
    assert table_names(db_url) == EXPECTED_TABLES


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    """A second upgrade changes nothing and says so."""
    url = db_url
    migrate.upgrade(url)
    again = migrate.upgrade(url)
    assert not again.changed
    assert again.before == again.after == migrate.head_revision()


def test_models_match_the_migrated_schema(db_url: str) -> None:
    """compare_metadata finds no difference between the ORM models and the migrated DB."""
    store = open_store(db_url)
    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            # The comparison does see differences (so the empty list above means something).
            extra = MetaData()
            Table("not_migrated", extra, Column("id", Integer, primary_key=True))
            assert compare_metadata(context, extra) != []
    finally:
        store.dispose()


def test_constraints_and_indexes_have_conventional_names(db_url: str) -> None:
    """The unique constraint, indexes and foreign key carry the naming convention's names."""
    store = open_store(db_url)
    try:
        inspector = inspect(store.engine)
        assert [u["name"] for u in inspector.get_unique_constraints("local_files")] == [
            "uq_local_files_folder_rel_path"
        ]
        indexes = inspector.get_indexes("local_files")
        # PostgreSQL also lists the index behind the unique constraint (marked as such).
        assert {i["name"] for i in indexes if not i.get("duplicates_constraint")} == {
            "ix_local_files_folder_state_state_changed_at",
            "ix_local_files_sha256",
            "ix_local_files_state_next_attempt_at",
        }
        (foreign_key,) = inspector.get_foreign_keys("remote_files")
        assert foreign_key["name"] == "fk_remote_files_local_file_id_local_files"
        assert foreign_key["options"].get("ondelete") == "SET NULL"
    finally:
        store.dispose()


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    """The initial migration can be undone and redone (for development and tests)."""
    url = db_url
    migrate.upgrade(url)
    command.downgrade(migrate.alembic_config(url=url), "base")
    assert migrate.current_revision(url) is None
    assert table_names(url) <= {"alembic_version"}
    assert migrate.upgrade(url).before is None


def test_every_migration_downgrades_and_upgrades_again(db_url: str) -> None:
    """Each revision undone one at a time, with rows in the tables, down to the first; then
    the upgrade from there rebuilds exactly the models' schema."""
    store = open_store(db_url)
    try:
        execute(
            db_url,
            "INSERT INTO local_files (folder, rel_path, purpose, size, mtime_ns, inode, "
            "state, first_seen_at, updated_at, state_changed_at, warnings) VALUES ('/d', "
            "'a.jsonl', 'fine-tune', 1, 1, 1, 'pending', '2025-01-01 00:00:00', "
            "'2025-01-01 00:00:00', '2025-01-01 00:00:00', 'a warning')",
        )
    finally:
        store.dispose()
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [script.revision for script in scripts.walk_revisions()]  # newest first
    config = migrate.alembic_config(url=db_url)
    for newer, older in itertools.pairwise(revisions):
        assert migrate.current_revision(db_url) == newer
        command.downgrade(config, older)
        assert migrate.current_revision(db_url) == older
    assert execute(db_url, "SELECT rel_path FROM local_files") == [("a.jsonl",)]
    result = migrate.upgrade(db_url)
    assert (result.before, result.after) == (revisions[-1], migrate.HEAD_REVISION)
    assert schema_differences(db_url) == []
    assert execute(db_url, "SELECT rel_path, warnings FROM local_files") == [("a.jsonl", None)]


_MIGRATE_ON_SIGNAL = """
import sys
from syncd.store import migrate
print("ready", flush=True)
sys.stdin.readline()
result = migrate.upgrade(sys.argv[1])
print(result.before or "-", result.after, flush=True)
"""


def test_processes_starting_at_once_migrate_one_after_the_other(db_url: str) -> None:
    """Several syncd processes (hosts sharing a server database, or two commands at once)
    migrating the same empty database together: one migrates, the others find it done."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_ON_SIGNAL, db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:  # all of them at once, as far as the OS allows
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert [(p.returncode, err) for p, (_, err) in zip(processes, outcomes, strict=True)] == [
        (0, "")
    ] * 3
    head = migrate.HEAD_REVISION
    assert sorted(out.strip() for out, _ in outcomes) == [
        f"- {head}",
        f"{head} {head}",
        f"{head} {head}",
    ]
    assert schema_differences(db_url) == []


def test_open_without_migrate_requires_a_migrated_database(db_url: str) -> None:
    """migrate=False refuses an unmigrated database and tells how to fix it."""
    url = db_url
    with pytest.raises(StoreError, match="syncd migrate"):
        open_store(url, migrate=False)
    migrate.upgrade(url)
    open_store(url, migrate=False).dispose()


def test_unknown_newer_revision_is_refused(db_url: str) -> None:
    """A database written by a newer syncd (unknown revision) is not touched."""
    migrate.upgrade(db_url)
    execute(db_url, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError) as caught:
        open_store(db_url)
    assert "9999" in str(caught.value)
    assert "newer syncd" in str(caught.value)
    assert execute(db_url, "SELECT version_num FROM alembic_version") == [("9999",)]


def test_0006_keeps_rows_with_an_unknown_ctime_and_not_racy(db_url: str) -> None:
    """Rows recorded at 0005 come through 0006 whole, with no ctime (a rescan fills it in
    without hashing) and not racy."""
    config = migrate.alembic_config(url=db_url)
    command.upgrade(config, "0005")
    execute(
        db_url,
        "INSERT INTO local_files (folder, rel_path, purpose, size, mtime_ns, inode, sha256, "
        "state, first_seen_at, updated_at, state_changed_at) VALUES ('/d', 'a.jsonl', "
        "'fine-tune', 7, 8, 9, 'ab', 'uploaded', '2025-01-01 00:00:00', "
        "'2025-01-01 00:00:00', '2025-01-01 00:00:00')",
    )
    result = migrate.upgrade(db_url)
    assert (result.before, result.after) == ("0005", migrate.head_revision())
    rows = execute(
        db_url,
        "SELECT rel_path, size, mtime_ns, inode, sha256, state, ctime_ns, racy FROM local_files",
    )
    assert [(*row[:7], bool(row[7])) for row in rows] == [
        ("a.jsonl", 7, 8, 9, "ab", "uploaded", None, False)
    ]
