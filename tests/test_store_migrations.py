"""Alembic migrations: they build exactly the ORM schema, run once, and guard the revision."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect

from syncd.errors import StoreError
from syncd.store import migrate, open_store
from syncd.store.schema import Base

EXPECTED_TABLES = {"alembic_version", "audit", "local_files", "meta", "remote_files"}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def table_names(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as connection:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return {row[0] for row in connection.execute(query)}


def test_migrations_are_found_in_the_checkout() -> None:
    """Without an installed wheel, the repository's migrations/ folder is used."""
    found = migrate.migrations_dir()
    assert (found / "env.py").is_file()
    assert found.name in ("migrations", "_migrations")


def test_head_revision_constant_matches_the_scripts() -> None:
    """The constant that lets a current database skip Alembic is the scripts' real head."""
    assert migrate.head_revision() == migrate.HEAD_REVISION


def test_a_current_database_is_opened_without_importing_alembic(tmp_path: Path) -> None:
    """Opening a migrated store stays off Alembic (and the Mako/Pygments it imports)."""
    url = sqlite_url(tmp_path / "state.db")
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


def test_a_database_with_several_revisions_is_refused_by_name(tmp_path: Path) -> None:
    """Two rows in alembic_version (branches syncd never makes): a clear error naming the file."""
    path = tmp_path / "state.db"
    migrate.upgrade(sqlite_url(path))
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("INSERT INTO alembic_version VALUES ('0001')")
        connection.commit()
    with pytest.raises(StoreError, match="several schema revisions") as raised:
        open_store(sqlite_url(path)).dispose()
    assert str(path) in str(raised.value)


def test_upgrade_from_empty_reaches_head(tmp_path: Path) -> None:
    """An empty file is migrated to head and reports where it came from."""
    path = tmp_path / "state.db"
    result = migrate.upgrade(sqlite_url(path))
    assert result.before is None
    assert result.after == migrate.head_revision()
    assert result.changed
    assert result.database == str(path)
    assert migrate.current_revision(sqlite_url(path)) == migrate.head_revision()
    assert table_names(path) == EXPECTED_TABLES


def test_upgrade_twice_is_a_no_op(tmp_path: Path) -> None:
    """A second upgrade changes nothing and says so."""
    url = sqlite_url(tmp_path / "state.db")
    migrate.upgrade(url)
    again = migrate.upgrade(url)
    assert not again.changed
    assert again.before == again.after == migrate.head_revision()


def test_models_match_the_migrated_schema(tmp_path: Path) -> None:
    """compare_metadata finds no difference between the ORM models and the migrated DB."""
    store = open_store(sqlite_url(tmp_path / "state.db"))
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


def test_constraints_and_indexes_have_conventional_names(tmp_path: Path) -> None:
    """The unique constraint, indexes and foreign key carry the naming convention's names."""
    store = open_store(sqlite_url(tmp_path / "state.db"))
    try:
        inspector = inspect(store.engine)
        assert [u["name"] for u in inspector.get_unique_constraints("local_files")] == [
            "uq_local_files_folder_rel_path"
        ]
        assert {i["name"] for i in inspector.get_indexes("local_files")} == {
            "ix_local_files_sha256",
            "ix_local_files_state_next_attempt_at",
        }
        (foreign_key,) = inspector.get_foreign_keys("remote_files")
        assert foreign_key["name"] == "fk_remote_files_local_file_id_local_files"
        assert foreign_key["options"].get("ondelete") == "SET NULL"
    finally:
        store.dispose()


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    """The initial migration can be undone and redone (for development and tests)."""
    url = sqlite_url(tmp_path / "state.db")
    migrate.upgrade(url)
    command.downgrade(migrate.alembic_config(url=url), "base")
    assert migrate.current_revision(url) is None
    assert table_names(tmp_path / "state.db") <= {"alembic_version"}
    assert migrate.upgrade(url).before is None


def test_open_without_migrate_requires_a_migrated_database(tmp_path: Path) -> None:
    """migrate=False refuses an unmigrated database and tells how to fix it."""
    url = sqlite_url(tmp_path / "state.db")
    with pytest.raises(StoreError, match="syncd migrate"):
        open_store(url, migrate=False)
    migrate.upgrade(url)
    open_store(url, migrate=False).dispose()


def test_unknown_newer_revision_is_refused(tmp_path: Path) -> None:
    """A database written by a newer syncd (unknown revision) is not touched."""
    path = tmp_path / "state.db"
    migrate.upgrade(sqlite_url(path))
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError) as caught:
        open_store(sqlite_url(path))
    assert "9999" in str(caught.value)
    assert "newer syncd" in str(caught.value)
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("9999",)
        ]
