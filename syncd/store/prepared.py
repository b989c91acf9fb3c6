"""Core statements compiled once per dialect and run on the session's own DBAPI connection.

The statements of an upload's outcome (lock the row, record the remote file, move the row,
append the audit line, claim the next row) run once per file each. Through SQLAlchemy's
execution machinery a prebuilt statement still costs about 85 us of Python per execution
(execution context, parameter processing, result wrapping); run on the driver's cursor as here,
about 10 us. With eight upload workers sharing one GIL that overhead was a third of their CPU
per file (issue 25).

A :class:`Prepared` statement keeps one SQLAlchemy Core statement as its single source of truth:
it is compiled by SQLAlchemy for the session's dialect on first use, with SQLAlchemy's own type
processors for the parameters and the result columns, and then runs on the cursor of the
connection the session's transaction already holds. So it runs in the same transaction as
every other statement of the session, sees and is seen by them, and a driver error becomes the
same :class:`sqlalchemy.exc.DBAPIError` SQLAlchemy would raise (a disconnect invalidates the
connection as SQLAlchemy would). A statement SQLAlchemy must re-render per execution (an
expanding ``IN``) runs through ``Session.execute`` instead.

Threads: any; a compiled form is built at most once per dialect per statement in the usual case
(two threads racing on the first use both build one; either is kept, both are equal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ClauseElement, Executable
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Prepared"]

_Processor = Callable[[Any], Any] | None
#: Marks a parameter the caller must give (it has no value in the statement).
_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class _Form:
    """One statement compiled for one dialect."""

    sql: str
    #: Parameter names in the order the driver takes them (qmark), or None for named styles.
    order: tuple[str, ...] | None
    #: Every parameter: its value in the statement (or ``_REQUIRED``) and its type's processor.
    params: dict[str, tuple[object, _Processor]]
    #: The result columns' processors, in column order; empty for a statement without rows.
    results: tuple[_Processor, ...]

    def arguments(self, given: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values: dict[str, Any] = {}
        for name, (default, process) in self.params.items():
            value = given.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"statement parameter {name!r} not given: {self.sql[:60]}")
            if process is not None and value is not None:
                try:
                    value = process(value)
                except Exception as exc:
                    # As SQLAlchemy reports a value its type refuses (a naive datetime...).
                    kind = f"{type(exc).__module__}.{type(exc).__name__}"
                    raise StatementError(f"({kind}) {exc}", self.sql, None, exc) from exc
            values[name] = value
        if self.order is None:
            return values
        return tuple(values[name] for name in self.order)

    def rows(self, fetched: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        processors = self.results
        if not any(processors):
            return [tuple(row) for row in fetched]
        return [
            tuple(
                value if process is None or value is None else process(value)
                for process, value in zip(processors, row, strict=True)
            )
            for row in fetched
        ]


class Prepared:
    """A Core statement run on the session's DBAPI connection; see the module docstring."""

    __slots__ = ("_forms", "statement")

    def __init__(self, statement: Executable) -> None:
        assert isinstance(statement, ClauseElement)
        self.statement = statement
        #: dialect name -> compiled form, or None where SQLAlchemy must render each execution.
        self._forms: dict[str, _Form | None] = {}

    def rows(self, s: Session, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run it in ``s``'s transaction; its result rows as plain tuples."""
        connection = s.connection()
        form = self._form(connection.dialect)
        if form is None:
            return [tuple(row) for row in s.execute(self.statement, params)]
        cursor = self._run(connection, form, form.arguments(params))
        try:
            return form.rows(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def first(self, s: Session, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Its first result row, or None."""
        found = self.rows(s, params)
        return found[0] if found else None

    def run(self, s: Session, params: Mapping[str, Any]) -> int:
        """Run a statement without result rows; how many rows it changed."""
        connection = s.connection()
        form = self._form(connection.dialect)
        if form is None:
            result = s.execute(self.statement, params)
            return int(getattr(result, "rowcount", -1))
        cursor = self._run(connection, form, form.arguments(params))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _form(self, dialect: Dialect) -> _Form | None:
        try:
            return self._forms[dialect.name]
        except KeyError:
            form = self._forms[dialect.name] = _compile(self.statement, dialect)
            return form

    @staticmethod
    def _run(connection: Connection, form: _Form, arguments: Any) -> Any:
        """A cursor that ran ``form``; driver errors as SQLAlchemy raises them."""
        driver = connection.connection.driver_connection
        assert driver is not None, "the session's connection is closed"
        dialect = connection.dialect
        cursor = driver.cursor()
        # SQLAlchemy's cursor events fire as for any statement (tests hook them to inject races;
        # tracing hooks them too); a listener's return value is not used.
        events = connection.dispatch
        try:
            if events.before_cursor_execute:
                events.before_cursor_execute(connection, cursor, form.sql, arguments, None, False)
            cursor.execute(form.sql, arguments)
            if events.after_cursor_execute:
                events.after_cursor_execute(connection, cursor, form.sql, arguments, None, False)
        except dialect.loaded_dbapi.Error as exc:
            cursor.close()
            if dialect.is_disconnect(exc, driver, cursor):
                connection.invalidate(exc)
            raise DBAPIError.instance(
                form.sql, arguments, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        except BaseException:
            cursor.close()  # a listener failed, or the thread is interrupted
            raise
        return cursor


def _compile(statement: Executable, dialect: Dialect) -> _Form | None:
    """``statement`` compiled for ``dialect``, or None if SQLAlchemy must render each run."""
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None  # an expanding IN: its SQL depends on the values
    if compiled.insert_prefetch or compiled.update_prefetch:
        return None  # a default computed in Python per row: SQLAlchemy's execution context does it
    if compiled.escaped_bind_names:
        return None  # the driver sees other names than the statement's: keep it simple
    params: dict[str, tuple[object, _Processor]] = {}
    for name, bind in compiled.binds.items():
        default: object = _REQUIRED if bind.required else bind.effective_value
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        params[name] = (default, process)
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    if compiled.positional and order is None and params:
        return None
    # A SELECT's columns, or the RETURNING columns of an INSERT or UPDATE (none without).
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in getattr(statement, "exported_columns", ())
    )
    return _Form(compiled.string, order, params, results)
