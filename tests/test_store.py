"""The job store's hot writes, and the broker transport under them: what each costs
in statements, transactions, connections and Redis clients, and that what must be
atomic still is."""

from __future__ import annotations

import sqlite3

import pytest
import redis
import sqlalchemy.exc
from sqlalchemy import Engine, event

from worker import db, store
from worker.models import JobStatus

SELFTEST = dict(kind="diagnostics.selftest", params={"duration_s": 0, "steps": 1}, priority=5, queue="cpu",
                soft_time_limit_s=10.0, time_limit_s=20.0, input_record=None, owner_id=None)


def _commits_on_its_own(dbapi_connection) -> bool:
    if isinstance(dbapi_connection, sqlite3.Connection):
        return dbapi_connection.isolation_level is None
    return dbapi_connection.autocommit


class Statements(list):
    """Statements seen: ``(verb, commits on its own)``; ``connections`` holds the DBAPI
    connection each ran on, in the same order."""

    def __init__(self):
        super().__init__()
        self.connections: list = []

    def waits_for_the_disk(self) -> list[bool]:
        """Whether each statement's commit waited for the write-ahead log to reach the
        disk, as the server says for its connection (PostgreSQL only)."""
        answers = []
        for dbapi_connection in self.connections:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                answers.append(cursor.fetchone()[0] != "off")
        return answers


@pytest.fixture
def statements():
    """Every statement this process sends to the database meanwhile, with whether its
    connection commits each statement on its own (no BEGIN and COMMIT around it)."""
    seen = Statements()

    def record(connection, _cursor, statement, _parameters, _context, _executemany):
        dbapi_connection = connection.connection.dbapi_connection
        seen.append((statement.split(None, 1)[0].upper(), _commits_on_its_own(dbapi_connection)))
        seen.connections.append(dbapi_connection)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_a_jobs_submission_start_and_end_are_one_statement_each_committed_on_its_own(clean, statements):
    job = store.create(**SELFTEST)
    started = store.start(job.id, worker="test/1", max_redeliveries=2)
    assert started.status == "running" and started.attempts == 1 and started.params == SELFTEST["params"]
    store.save_progress(job.id, fraction=0.5, stage="work", message="half way", seq=3)
    assert store.finish(job.id, JobStatus.SUCCEEDED, result={"peak_hz": 7.0}, started_at=started.started_at,
                        progress=dict(fraction=1.0, stage="work", message="done", seq=4))
    assert statements == [("INSERT", True), ("UPDATE", True), ("UPDATE", True), ("UPDATE", True)]
    if db.get_engine().dialect.name == "postgresql":
        # The submission and the end wait for the disk; the start and the progress need not,
        # since the end's commit flushes the log through them (db.autocommit).
        assert statements.waits_for_the_disk() == [True, False, False, True]

    recorded = store.get(job.id)
    assert (recorded.status, recorded.result, recorded.progress_message, recorded.progress_seq) == (
        "succeeded", {"peak_hz": 7.0}, "done", 4)
    assert recorded.run_seconds is not None and recorded.run_seconds >= 0
    # The guards still hold: a finished job neither starts nor finishes again.
    assert store.start(job.id, worker="test/2", max_redeliveries=2) is None
    assert not store.finish(job.id, JobStatus.FAILED, started_at=started.started_at)
    assert store.get(job.id).status == "succeeded"


@pytest.fixture
def kept_connection():
    """This thread keeps its autocommit connection, as a worker's pool process does."""
    db.keep_autocommit_connection()
    yield
    db.forget_inherited_connections()


def test_a_kept_connection_serves_every_write_and_is_replaced_once_it_breaks(clean, kept_connection):
    job = store.create(**SELFTEST)
    with db.autocommit(durable=False) as first:
        pass
    started = store.start(job.id, worker="test/1", max_redeliveries=2)
    with db.autocommit(durable=False) as again:
        assert again is first  # no checkout from the pool between writes

    first.connection.dbapi_connection.close()  # as a restarted server leaves it
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        store.save_progress(job.id, fraction=0.5, stage=None, message=None, seq=1)
    # The write that failed is the only one: the next takes a new connection.
    store.save_progress(job.id, fraction=0.5, stage="work", message="half way", seq=2)
    with db.autocommit(durable=False) as replaced:
        assert replaced is not first
    assert store.finish(job.id, JobStatus.SUCCEEDED, result={}, started_at=started.started_at)
    recorded = store.get(job.id)
    assert (recorded.status, recorded.progress_message) == ("succeeded", "half way")

    # The same for a job's start, a prepared statement on PostgreSQL: the new connection
    # prepares it again.
    other = store.create(**SELFTEST)
    replaced.connection.dbapi_connection.close()
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        store.start(other.id, worker="test/1", max_redeliveries=2)
    assert store.start(other.id, worker="test/1", max_redeliveries=2).attempts == 1


def test_on_postgresql_a_jobs_start_and_end_are_prepared_once_a_connection(clean, kept_connection):
    """The two writes of every job skip the server's parsing and planning, and the
    worker's SQLAlchemy execution layer (``db.execute_prepared``), and give what the
    ORM would have."""
    if db.get_engine().dialect.driver != "psycopg2":
        pytest.skip("prepared statements are run on psycopg2's cursor only")
    jobs = store.create_many([SELFTEST] * 3)
    for job in jobs:
        started = store.start(job.id, worker="test/1", max_redeliveries=2)
        assert (started.status, started.attempts, started.params) == ("running", 1, SELFTEST["params"])
        assert started.started_at.tzinfo is not None
        assert store.finish(job.id, JobStatus.SUCCEEDED, result={"hr_bpm": 61.5, "hrv": float("nan"), "beats": [1, 2]},
                            artifacts=[{"name": "pulse.csv", "size": 10}], started_at=started.started_at)
    recorded = store.get(jobs[-1].id)
    assert (recorded.status, recorded.result, recorded.artifacts) == (
        "succeeded", {"hr_bpm": 61.5, "hrv": None, "beats": [1, 2]}, [{"name": "pulse.csv", "size": 10}])
    assert recorded.finished_at == recorded.updated_at and recorded.run_seconds >= 0
    assert not store.finish(jobs[-1].id, JobStatus.FAILED, started_at=started.started_at)  # the guard holds

    def runs_of_prepared_updates(durable: bool) -> list[int]:
        """How often each UPDATE prepared on this connection ran, as the server counts."""
        with db.autocommit(durable=durable) as connection:
            return sorted(runs for statement, runs in connection.exec_driver_sql(
                "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
                if " AS UPDATE jobs " in statement)

    assert runs_of_prepared_updates(durable=False) == [3]  # the starts
    assert runs_of_prepared_updates(durable=True) == [1, 3]  # the ends, and the refused end (other columns)


def test_a_batch_is_stored_in_one_transaction_whole_or_not_at_all(clean, statements):
    jobs = store.create_many([SELFTEST] * 3)
    assert len({job.id for job in jobs}) == 3 and statements == [("INSERT", False)]

    too_big = {**SELFTEST, "priority": 2**70}  # no database stores it as an integer
    # SQLite's driver refuses it before sending (OverflowError), PostgreSQL after (DataError).
    with pytest.raises((OverflowError, sqlalchemy.exc.DataError)):
        store.create_many([SELFTEST, SELFTEST, too_big])
    assert store.find()[1] == 3  # the two good rows of the refused batch were not kept


def test_the_broker_transport_builds_no_redis_client_per_message(clean, monkeypatch):
    """Kombu asks its channel for a client at every publish and acknowledgement; with
    vitalq's transport they all share one, so a worker's main process does not build
    redis-py's table of response callbacks once a message (redis/redis-py#3624)."""
    from worker.broker import Transport
    from worker.celery_app import app

    built = []
    original = redis.Redis.__init__
    monkeypatch.setattr(redis.Redis, "__init__", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    with app.connection_for_write() as connection, connection.Producer() as producer:
        assert isinstance(connection.transport, Transport)
        for number in range(50):
            producer.publish({"number": number}, routing_key="vitalq-test-transport", exchange="",
                             declare=[app.amqp.queues["vitalq-test-transport"]])
        channel = connection.default_channel
        assert channel.client.llen("vitalq-test-transport") == 50
        channel.client.delete("vitalq-test-transport")
        assert len(built) <= 2  # one for its pool, one for the consumer's blocking reads
        # A reconnect makes a new pool, and the client follows it.
        first = channel._create_client()
        channel._pool = None
        assert channel._create_client() is not first and channel._create_client().connection_pool is channel.pool
