"""The database engine and sessions of this process, and schema migrations.

One engine per process, created on first use: a forked Celery pool child throws away
the connections it inherited (see ``worker.celery_app``).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
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
