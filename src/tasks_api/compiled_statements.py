"""Statements that SQLAlchemy writes once and asyncpg runs directly.

A repository builds its hot statements once, with bind parameters for every value, and wraps each
in a `CompiledStatement`: SQLAlchemy compiles it to asyncpg's SQL then and there, and each request
hands the SQL and its arguments straight to the pooled connection (`RequestDatabase.fetch`).

Why not SQLAlchemy's own execution: around asyncpg's fetch it finds the compiled form in its cache,
builds an execution context and a cursor, has the SQL prepared through its adapter and wraps the
result, which in a micro-timing of the GET's statement on the benchmark machine doubled what
asyncpg alone took (bench/RESULTS.md, round 3). What of that work a statement needs is done here
once: the parameters' order, each parameter's type conversion (a priority to its rank), and each
column's (a rank back to its priority). The statement stays a SQLAlchemy object, so it is written,
reviewed and migrated like every other, and a transaction still runs it through SQLAlchemy.
"""

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import ExecutableReturnsRows
from sqlalchemy.types import TypeEngine

# The app's dialect (PostgreSQL through asyncpg). Compiling needs none of what connecting tells a
# dialect about the server: tests/test_compiled_statements.py holds the SQL equal to what the
# engine's own dialect writes.
DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # SQLAlchemy's own, untyped

_Convert = Callable[[Any], Any]


class CompiledStatement:
    """`statement`, compiled once: its SQL, how to order and convert its parameters, and how to
    turn asyncpg's records into rows.

    A row is a named tuple of the statement's columns: values by position or by attribute, like
    SQLAlchemy's Row (`TaskRecord` relies on both).
    """

    def __init__(self, statement: ExecutableReturnsRows) -> None:
        compiled = statement.compile(dialect=DIALECT)
        if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
            raise TypeError("not a statement with positional parameters")
        _refuse_what_execution_would_add(compiled)
        self.statement = statement
        self.sql = compiled.string
        self._parameters = tuple(_parameter(compiled, name) for name in compiled.positiontup)
        columns = statement.exported_columns
        # A column name that is not an identifier fails here, when the statement is built.
        row = namedtuple("Row", columns.keys())  # type: ignore[misc]  # names known at run time
        self._make_row: Callable[[Iterable[Any]], tuple[Any, ...]] = row._make
        self._conversions = tuple(
            (index, convert)
            for index, column in enumerate(columns)
            if (convert := _result_conversion(column.key, column.type))
        )

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for `parameters` by name; a missing one is a KeyError."""
        arguments = []
        for name, constant, convert in self._parameters:
            value = constant if name is None else parameters[name]
            arguments.append(value if convert is None else convert(value))
        return arguments

    def rows(self, records: Iterable[Sequence[Any]]) -> list[Any]:
        """asyncpg's records of this statement as named tuples, each value converted."""
        make = self._make_row
        if not self._conversions:
            return [make(record) for record in records]
        rows = []
        for record in records:
            values = list(record)
            for index, convert in self._conversions:
                values[index] = convert(values[index])
            rows.append(make(values))
        return rows


def _parameter(compiled: SQLCompiler, name: str) -> tuple[str | None, Any, _Convert | None]:
    """(the parameter's name, or None for a constant of the statement; the constant; the type's
    conversion). Constants are the values written into the statement, like the 1 of
    `version + 1`: SQLAlchemy binds them as anonymous parameters."""
    bind = compiled.binds[name]
    convert = bind.type.dialect_impl(DIALECT).bind_processor(DIALECT)
    if bind.required:
        return name, None, convert
    return None, bind.value, convert


def _result_conversion(name: str, column_type: TypeEngine[Any]) -> _Convert | None:
    """How SQLAlchemy converts the column's values, worked out without a result at hand: a type
    whose conversion depends on the driver's type code for the result (asyncpg's Numeric, which
    integer division produces) is refused when the statement is built."""
    try:
        return column_type.dialect_impl(DIALECT).result_processor(DIALECT, None)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"column {name!r}: SQLAlchemy converts {column_type!r} by the result's type code, "
            "unknown in advance; cast the column to a type it converts without one"
        ) from error


def _refuse_what_execution_would_add(compiled: SQLCompiler) -> None:
    """SQLAlchemy's execution fills in a column's Python-side default (an INSERT that leaves out
    `version`), and expands an IN list to one parameter per value at every run. Neither happens
    here, so a statement that needs either is refused when it is built: give the value, or bind an
    array and compare with ANY."""
    if compiled.insert_prefetch or compiled.update_prefetch:
        columns = [column.key for column in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        raise TypeError(f"give every value: a Python-side default would fill {columns}")
    if "POSTCOMPILE" in compiled.string:
        raise TypeError("an expanding IN list: bind an array and compare with ANY instead")
