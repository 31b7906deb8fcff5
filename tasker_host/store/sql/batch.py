"""Helpers to run Core statements fast: compiled once per dialect, bound by hand.

``Connection.execute(stmt, rows)`` builds and type-processes a parameter dict per row in Python
(several microseconds each) and wraps every result row; for the hundreds of rows a claim or a
record touches, that was the largest cost on SQLite. These helpers keep the statements as Core
constructs (so they are written once, for both databases) but bind parameters and read rows with
less machinery. Everything still runs through the :class:`~sqlalchemy.engine.Connection`
(transaction, events, error wrapping).
"""

from __future__ import annotations

import functools
import json
import re
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

_B = sa.bindparam


def lit(value: str | int) -> sa.ColumnElement[Any]:
    """A literal in the SQL text (lets the planners match the partial indexes' predicates)."""
    return sa.literal_column(repr(value) if isinstance(value, str) else str(value))


class Many:
    """An executemany of a Core DML statement: compiled once per dialect, parameters bound here.

    Rows are dicts keyed by bind name; bind names a row lacks take the statement's constant (e.g.
    ``state='complete'`` in ``values()``). Values still go through each type's own bind processor
    (JSON serialisation).
    """

    def __init__(self, statement: sa.ClauseElement):
        self.statement = statement
        self._plans: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {}

    def _plan(self, dialect: sa.Dialect) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)  # a Core statement compiles to SQL
            positional = bool(compiled.positional)
            names = list(compiled.positiontup or ()) if positional else list(compiled.binds)
            env: dict[str, Any] = {}
            parts = []
            for i, name in enumerate(names):
                bind = compiled.binds[name]
                if bind.required:
                    expr = f"r[{name!r}]"
                else:
                    env[f"d{i}"] = bind.value
                    expr = f"r.get({name!r}, d{i})"
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    env[f"p{i}"] = processor
                    expr = f"p{i}({expr})"
                parts.append(expr if positional else f"{name!r}: {expr}")
            body = f"({', '.join(parts)},)" if positional else f"{{{', '.join(parts)}}}"
            # one row -> driver parameters, as a compiled expression (no per-value Python loop)
            binder = eval(f"lambda r: {body}", env)  # noqa: S307 - built from bind names only
            plan = self._plans[dialect.name] = (compiled.string, binder)
        return plan

    def __call__(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            sql, binder = self._plan(conn.dialect)
            conn.exec_driver_sql(sql, list(map(binder, rows)))


class Unindexed(ColumnElement[Any]):
    """``column`` that SQLite must not look up through an index (rendered ``+column`` there).

    Without statistics SQLite would otherwise drive the claim query from ``tasks`` by status and
    sort every live task's steps, instead of walking ``ix_steps_runnable`` in ``ready_at`` order.
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement[Any]):
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _unindexed(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(Unindexed, "sqlite")
def _unindexed_sqlite(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


class ManyInsert(Many):
    """Rows into ``table``: executemany, or on PostgreSQL one ``INSERT ... SELECT FROM
    json_to_recordset(rows)``: the whole batch is ONE text parameter, serialised by ``json.dumps``
    (C) — JSON columns travel as they are, without a string of their own — instead of one array
    parameter per column that the driver renders element by element in Python."""

    def __init__(self, table: sa.Table, columns: Sequence[str]):
        super().__init__(sa.insert(table).values({c: _B(c) for c in columns}))
        self.table, self.columns = table, list(columns)
        self._pg: dict[str, str] = {}

    def _pg_plan(self, dialect: sa.Dialect, prefix: str = "") -> str:
        """The INSERT, its one parameter named ``prefix + "rows"``."""
        if prefix not in self._pg:
            quote = dialect.identifier_preparer.quote
            names = ", ".join(quote(c) for c in self.columns)
            types = ", ".join(f"{quote(c)} {self._pg_type(dialect, c)}" for c in self.columns)
            self._pg[prefix] = (f"INSERT INTO {dialect.identifier_preparer.format_table(self.table)} ({names}) "
                                f"SELECT {names} FROM json_to_recordset(%({prefix}rows)s::json) AS v({types})")
        return self._pg[prefix]

    def _pg_type(self, dialect: sa.Dialect, column: str) -> str:
        column_type = self.table.c[column].type
        return "jsonb" if isinstance(column_type, sa.JSON) else str(column_type.compile(dialect=dialect))

    @staticmethod
    def rows_param(rows: Sequence[Mapping[str, Any]]) -> str:
        return json.dumps(list(rows), separators=(",", ":"))

    def __call__(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows or conn.dialect.name != "postgresql":
            return super().__call__(conn, rows)
        conn.exec_driver_sql(self._pg_plan(conn.dialect), {"rows": self.rows_param(rows)})


class InsertAll:
    """Rows into several tables: on PostgreSQL ONE statement (the first inserts as data-modifying
    CTEs; foreign keys are checked at the end of the statement, so rows may refer to rows inserted
    by an earlier insert), elsewhere one :class:`ManyInsert` after the other. ``then``: a SELECT
    the PostgreSQL statement ends with (e.g. a notification), run with the inserts."""

    def __init__(self, *inserts: ManyInsert):
        self.inserts = inserts
        self._sql: dict[str | None, str] = {}

    def __call__(self, conn: sa.Connection, *rows: Sequence[Mapping[str, Any]], then: str | None = None) -> None:
        if conn.dialect.name != "postgresql":
            for insert, batch in zip(self.inserts, rows, strict=True):
                insert(conn, batch)
            return
        if then not in self._sql:
            plans = [insert._pg_plan(conn.dialect, f"i{n}_") for n, insert in enumerate(self.inserts)]
            *first, last = plans if then is None else [*plans, then]
            ctes = ", ".join(f"i{n} AS ({sql})" for n, sql in enumerate(first))
            self._sql[then] = f"WITH {ctes} {last}" if ctes else last
        params = {f"i{n}_rows": ManyInsert.rows_param(batch) for n, batch in enumerate(rows)}
        conn.exec_driver_sql(self._sql[then], params)


class Rows:
    """A SELECT compiled once per dialect, run through ``exec_driver_sql``; rows come back as named
    tuples of raw driver values (no result processing: only for columns that need none)."""

    def __init__(self, statement: sa.Select[Any]):
        self.statement = statement
        self.row: Any = namedtuple("row", [c.key for c in statement.selected_columns])  # type: ignore[misc]
        self._plans: dict[str, tuple[str, list[str], bool, dict[str, Any]]] = {}

    def __call__(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[Any]:
        plan = self._plans.get(conn.dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            assert "POSTCOMPILE" not in compiled.string, "expanding parameters need Connection.execute"
            names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
            defaults = {n: compiled.binds[n].value for n in names if not compiled.binds[n].required}
            plan = self._plans[conn.dialect.name] = (compiled.string, names, bool(compiled.positional), defaults)
        sql, names, positional, defaults = plan
        values = [params[n] if n in params else defaults[n] for n in names]
        args = tuple(values) if positional else dict(zip(names, values, strict=True))
        return list(map(self.row._make, conn.exec_driver_sql(sql, args)))


class PgStatement:
    """A long PostgreSQL statement written with ``%(name)s`` parameters, converted once to ``$n``
    placeholders and sent through a psycopg raw cursor (still via the Connection: events, errors).

    psycopg caches its parsing of ``%(name)s`` placeholders only for statements up to 4 KB: longer
    ones (the hot-path CTE statements) were parsed again on every execution (~50 us of CPU).
    ``%%`` stands for ``%``.
    """

    def __init__(self, sql: str):
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.named = sql
        self.sql = re.sub(r"%\((\w+)\)s", number, sql).replace("%%", "%")
        self.names = tuple(names)

    def __call__(self, conn: sa.Connection, params: Mapping[str, Any]) -> sa.CursorResult[*tuple[Any, ...]]:
        raw = _raw_cursor()
        if raw is None:  # psycopg < 3.2
            return conn.exec_driver_sql(self.named, dict(params))
        driver = conn.connection.driver_connection
        factory = driver.cursor_factory  # type: ignore[union-attr]
        driver.cursor_factory = raw  # type: ignore[union-attr]
        try:
            return conn.exec_driver_sql(self.sql, tuple(params[name] for name in self.names))
        finally:
            driver.cursor_factory = factory  # type: ignore[union-attr]


@functools.cache
def _raw_cursor() -> type | None:
    """psycopg's ``RawCursor`` (psycopg >= 3.2; imported on first use: SQLite never needs it)."""
    try:
        from psycopg import RawCursor
    except ImportError:  # pragma: no cover
        return None
    return RawCursor
