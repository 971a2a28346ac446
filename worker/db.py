"""The database engine and sessions of this process, and schema migrations.

One engine per process, created on first use: a forked Celery pool child throws away
the connections it inherited (see ``worker.celery_app``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import namedtuple
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Dialect, Engine, Executable, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

from .settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

_engines: dict[str, Engine] = {}
_sessions: dict[str, sessionmaker[Session]] = {}
#: Autocommit engines, by URL and durability (see ``autocommit``).
_autocommit_engines: dict[tuple[str, bool], Engine] = {}
#: The autocommit connections kept by the one thread of a worker's pool process.
_kept_connections: dict[tuple[str, bool], Connection] = {}
_keeping_threads: set[int] = set()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # The web server and the workers write from several processes at once.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")  # profiles go with their device
        cursor.close()


def _create_engine(url: str, **options) -> Engine:
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **options)
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it would cost a round trip on every transaction. A connection that
    # died with its server (a restart) fails its first use instead, and SQLAlchemy
    # then drops every pooled connection: one request answers 503, the next reconnect.
    return create_engine(url, pool_size=10, max_overflow=20, **options)


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: ``DATABASE_URL``), created once per process."""
    url = url or get_settings().database_url
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = _create_engine(url)
        _sessions[url] = sessionmaker(engine, expire_on_commit=False)
    return engine


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    get_engine()
    session = _sessions[get_settings().database_url]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def autocommit(durable: bool = True) -> Iterator[Connection]:
    """A connection on which each statement commits on its own, for writes that are one
    atomic statement (the job store's hot path): without BEGIN and COMMIT round trips
    and the ORM session, a short write costs a third to a half less time and CPU, in
    this process and in the database. A thread that called ``keep_autocommit_connection``
    gets the same connection each time.

    ``durable=False`` is for a write that a later durable one makes lasting, and whose
    loss in a crash of the database costs nothing that lasts (a job's start, its
    progress): on PostgreSQL its commit returns before the write-ahead log reaches the
    disk (``synchronous_commit = off``, per session; see "Asynchronous Commit" in
    PostgreSQL's manual). It is visible to everyone at once, as any commit, and a
    durable commit that follows flushes the log up to itself, with it. On this
    project's machines a durable commit waited 90 µs typically and 0.7 to 1.4 ms one
    time in five to ten (the disk's flush). Other databases ignore the flag.
    """
    url = get_settings().database_url
    # Only PostgreSQL has the setting: elsewhere one engine serves both.
    waits_for_the_disk = durable or not url.startswith("postgresql")
    key = (url, waits_for_the_disk)
    engine = _autocommit_engines.get(key)
    if engine is None:
        options = {} if waits_for_the_disk else {"connect_args": {"options": "-c synchronous_commit=off"}}
        # Nothing to reset when a connection goes back to the pool: it holds no transaction.
        engine = _autocommit_engines[key] = _create_engine(url, isolation_level="AUTOCOMMIT",
                                                           pool_reset_on_return=None, **options)
    if threading.get_ident() not in _keeping_threads:
        with engine.connect() as connection:
            yield connection
        return
    connection = _kept_connections.get(key)
    if connection is None:
        connection = _kept_connections[key] = engine.connect()
    try:
        yield connection
    except BaseException:
        # The connection may have died with its server: the next write takes a new one.
        _kept_connections.pop(key, None)
        connection.close()
        raise


def keep_autocommit_connection() -> None:
    """Let the calling thread keep its ``autocommit`` connection between writes. A
    worker's pool process calls this: its jobs run one at a time in one thread, and a
    checkout from the pool and back costs each of a short job's two writes about a
    tenth of a millisecond of CPU."""
    _keeping_threads.add(threading.get_ident())


def forget_inherited_connections() -> None:
    """Drop pooled connections inherited across a fork without closing the parent's."""
    _kept_connections.clear()
    _keeping_threads.clear()
    for engine in (*_engines.values(), *_autocommit_engines.values()):
        engine.dispose(close=False)


class _Prepared(NamedTuple):
    """A Core statement as a PostgreSQL prepared statement, for psycopg2."""

    name: str
    prepare: str
    execute: str
    #: The statement's bind names, in the order of its parameters ($1, $2, ...).
    order: tuple[str, ...]
    #: Values of the binds that have one (literals).
    defaults: dict[str, Any]
    #: The conversions of the columns' types (JSON to text), by bind name.
    converters: dict[str, Callable[[Any], Any]]


_prepared: dict[Executable, _Prepared] = {}
_row_types: dict[tuple[str, ...], type] = {}


def _prepare_for_psycopg2(statement: Executable, dialect: Dialect) -> _Prepared:
    compiled = statement.compile(dialect=type(dialect)(paramstyle="numeric_dollar"))
    if compiled.insert_prefetch or compiled.update_prefetch:
        missing = [column.name for column in compiled.insert_prefetch + compiled.update_prefetch]
        raise ValueError(f"a column default computed in Python needs SQLAlchemy's execution: set {missing} explicitly")
    converters = {}
    for bind, bind_name in compiled.bind_names.items():
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converters[bind_name] = convert
    # Named after its text: the same statement, however often compiled (by two threads
    # at once, say), is the same prepared statement, and two statements never share a name.
    name = f"vitalq_{hashlib.sha1(compiled.string.encode()).hexdigest()[:20]}"
    order = tuple(compiled.positiontup or ())
    prepared = _prepared[statement] = _Prepared(
        name, f"PREPARE {name} AS {compiled.string}", f"EXECUTE {name}({', '.join(['%s'] * len(order))})",
        order, compiled.params, converters)
    return prepared


def execute_prepared(connection: Connection, statement: Executable, values: dict[str, Any]) -> list[tuple]:
    """Run ``statement`` (a Core statement built once, its binds named:
    ``bindparam("job_id")``) with ``values``, and return its rows as named tuples.

    For the writes that every job makes: its start and its end. With psycopg2 they run
    on the connection's own cursor as server-side prepared statements (PREPARE once per
    connection, then EXECUTE), which spares the database parsing and planning them
    each time and the worker SQLAlchemy's execution layer (its execution context, and
    processing of parameters and rows), which cost as much CPU as the driver's own
    work. On this project's 2-core machine a job's two writes went from 0.45 to 0.26 ms
    of the worker's CPU, from 0.50 to 0.29 ms of PostgreSQL's and from 1.1 to 0.7 ms of
    waiting, and a worker drained 6-8 % more short jobs a second. Values are converted
    by their columns' types (JSON to text); rows are what psycopg2 returns (it parses
    JSON and time zones itself). A driver error is raised as SQLAlchemy's
    (``OperationalError`` for a lost server) and discards the connection, with whatever
    state it had.

    Elsewhere, or while an event listener watches cursor executions (tracing, tests),
    the statement runs through SQLAlchemy as any other.
    """
    dialect = connection.dialect
    if dialect.driver != "psycopg2" or connection.dispatch.before_cursor_execute \
            or connection.dispatch.after_cursor_execute:
        return list(connection.execute(statement, values))
    prepared = _prepared.get(statement) or _prepare_for_psycopg2(statement, dialect)
    parameters = {**prepared.defaults, **values}
    for name, convert in prepared.converters.items():
        parameters[name] = convert(parameters[name])
    # The info of a pooled connection lives as long as its connection to the server.
    prepared_here = connection.connection.info.setdefault("vitalq_prepared", set())
    cursor = connection.connection.cursor()
    try:
        if prepared.name not in prepared_here:
            cursor.execute(prepared.prepare)
            prepared_here.add(prepared.name)
        cursor.execute(prepared.execute, [parameters[name] for name in prepared.order])
        if cursor.description is None:
            return []
        names = tuple(column.name for column in cursor.description)
        rows = cursor.fetchall()
    except dialect.loaded_dbapi.Error as error:
        connection.invalidate(error)
        raise exc.DBAPIError.instance(prepared.execute, parameters, error, dialect.loaded_dbapi.Error,
                                      connection_invalidated=True, dialect=dialect) from error
    finally:
        cursor.close()
    row_type = _row_types.get(names)
    if row_type is None:
        row_type = _row_types[names] = namedtuple("Row", names)
    return [row_type._make(row) for row in rows]


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None) -> None:
    """Bring the schema to the newest migration."""
    command.upgrade(alembic_config(url), "head")


def schema_revision() -> tuple[str | None, str]:
    """(revision the database is at, newest revision the code knows)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with get_engine().connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head


def ping() -> None:
    """Raise if the database cannot be reached."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
