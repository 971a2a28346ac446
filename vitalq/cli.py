"""``vitalq``: run the platform, and submit, list and cancel jobs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import click
import httpx

from worker.settings import get_settings, use_settings

from . import processes
from .client import ApiError, Client, coerce_param

DEFAULT_URL = "http://127.0.0.1:8000"


@click.group()
@click.version_option(package_name="vitalq")
def main() -> None:
    """vitalq: background processing for physiological sensing."""
    # What vitalq writes (database, uploads, results, the embedded Redis's files, keys)
    # is its owner's alone: files 0600, folders 0700.
    os.umask(0o077)


# --- running the platform ---------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the web server and Flower bind to.")
@click.option("--port", default=8000, show_default=True, help="Web server port.")
@click.option("--flower-port", default=5555, show_default=True, help="Flower port.")
@click.option("--data-dir", default="./var", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where uploads, artifacts, the SQLite database and the embedded Redis live.")
@click.option("--concurrency", type=int, default=None, help="Processes of the cpu worker (default: one per core).")
@click.option("--no-flower", is_flag=True, help="Do not start Flower.")
def up(host: str, port: int, flower_port: int, data_dir: Path, concurrency: int | None, no_flower: bool) -> None:
    """Run everything: web, workers (cpu, and one per device), beat and Flower.

    With REDIS_URL unset, an embedded Redis is started; with DATABASE_URL unset, SQLite
    under the data folder is used. Migrations are applied first. A process that exits is
    started again (with backoff); Ctrl-C stops it all.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"VITALQ_DATA_DIR": str(data_dir), "VITALQ_FLOWER_UPSTREAM": f"http://127.0.0.1:{flower_port}"}
    os.environ.update(env)

    from worker.embedded_redis import EmbeddedRedis

    embedded = None
    if not os.environ.get("REDIS_URL"):
        embedded = EmbeddedRedis(data_dir / "redis")
        env["REDIS_URL"] = os.environ["REDIS_URL"] = embedded.start()
    try:
        from worker import db

        use_settings(None)  # read again, with the data folder and broker just set
        settings = get_settings()
        click.echo(f"vitalq: database {_redact(settings.database_url)}: applying migrations")
        db.upgrade()
        _ensure_default_model()
        _first_admin(host, port, data_dir)

        flower_auth = get_settings().flower_auth or _flower_password(data_dir)
        env["VITALQ_FLOWER_AUTH"] = flower_auth  # the web tier passes admins through to Flower with it
        supervisor = processes.Supervisor(env, pool=processes.hardware_pool,
                                          status_path=settings.supervisor_status_path)
        if embedded is not None:  # a Redis that exits is started again, on its port and files
            supervisor.adopt(processes.ProcessSpec("redis", embedded.argv, service=True), embedded.process)
        supervisor.start(processes.web(host, port))
        supervisor.start(processes.cpu_worker(concurrency))
        supervisor.start(processes.beat())
        if not no_flower:
            supervisor.start(processes.flower(host, flower_port, flower_auth))
        click.echo(f"vitalq: broker {_redact(settings.redis_url)}{' (embedded)' if embedded else ''}")
        click.echo(f"vitalq: web    http://{host}:{port}/   (API http://{host}:{port}/api/v1)")
        if not no_flower:
            click.echo(f"vitalq: flower http://{host}:{port}/flower/ (signed in as an admin), or "
                       f"http://{host}:{flower_port}/flower/ with the user and password in {data_dir / 'flower-auth'}")
        click.echo("vitalq: press Ctrl-C to stop")
        code = supervisor.wait()
    finally:
        if embedded is not None:
            embedded.stop()
    sys.exit(code)


@main.command()
@click.argument("name", type=click.Choice(["web", "worker-cpu", "worker-hw", "beat", "flower"]))
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, default=None, help="Web (default $PORT or 8000) or Flower (default 5555) port.")
@click.option("--concurrency", type=int, default=None)
def serve(name: str, host: str, port: int | None, concurrency: int | None) -> None:
    """Run one of vitalq's processes in the foreground (as the Procfile does)."""
    if name == "worker-hw":
        # The hardware pool: a worker per registered device, following the registry.
        sys.exit(processes.Supervisor(pool=processes.hardware_pool).wait())
    spec = {
        "web": lambda: processes.web(host, port or int(os.environ.get("PORT", 8000))),
        "worker-cpu": lambda: processes.cpu_worker(concurrency),
        "beat": processes.beat,
        "flower": lambda: processes.flower(host, port or 5555, _required_flower_auth()),
    }[name]()
    os.execve(spec.argv[0], spec.argv, {**os.environ, **spec.env})


@main.group()
def users() -> None:
    """Accounts and their API tokens (run where DATABASE_URL points at vitalq's database)."""


@users.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May see every job, and manage devices and models.")
def users_create(name: str, admin: bool) -> None:
    """Create the user NAME and print their first token (shown once)."""
    from worker import accounts

    with _vitalq_errors():
        user, token = accounts.create_user(name, admin=admin)
    click.echo(f"vitalq: user {user.name}{' (admin)' if admin else ''} created; their token (shown once):", err=True)
    click.echo(token)


@users.command("token")
@click.argument("name")
def users_token(name: str) -> None:
    """Print a new token for NAME (their other tokens stay valid until revoked)."""
    from worker import accounts

    with _vitalq_errors():
        click.echo(accounts.issue_token(name))


@users.command("revoke")
@click.argument("token")
def users_revoke(token: str) -> None:
    """Revoke TOKEN, given whole or by the prefix `vitalq users list` shows."""
    from worker import accounts

    revoked = accounts.revoke(token)
    click.echo(f"vitalq: {revoked} token(s) revoked", err=True)
    sys.exit(0 if revoked else 1)


@users.command("list")
def users_list() -> None:
    """Every user and their tokens (by prefix)."""
    from worker import accounts

    for user, tokens in accounts.users():
        live = [t.prefix for t in tokens if t.revoked_at is None]
        click.echo(f"{user.name}\t{'admin' if user.is_admin else 'user'}\ttokens: {', '.join(live) or 'none'}")


class _vitalq_errors:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, _tb):
        from vitalq.errors import VitalqError

        if exc is not None and isinstance(exc, VitalqError):
            raise click.ClickException(f"{exc.code}: {exc.message}")
        return False


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied."""
    from worker import db as database

    database.upgrade()
    current, head = database.schema_revision()
    click.echo(f"database at revision {current} (head {head})")


@main.group()
def models() -> None:
    """The risk-model registry."""


@models.command("default")
def models_default() -> None:
    """Train and register the demonstration model if no model is registered yet."""
    _ensure_default_model()


def _flower_password(data_dir: Path) -> str:
    """``admin:<password>`` for Flower, made on the first start and kept in the data folder."""
    import secrets

    path = data_dir / "flower-auth"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(f"admin:{secrets.token_urlsafe(18)}")
    return path.read_text().strip()


def _required_flower_auth() -> str:
    auth = get_settings().flower_auth
    if ":" not in auth:
        raise click.UsageError("Flower runs only behind a sign-in: set VITALQ_FLOWER_AUTH=user:password")
    return auth


def _first_admin(host: str, port: int, data_dir: Path) -> None:
    """On the first start, an admin account, so that a fresh install can be used at once."""
    from worker import accounts

    if accounts.count_users():
        click.echo("vitalq: sign in with your token (`vitalq users token NAME` makes another)")
        return
    _user, token = accounts.create_user("admin", admin=True)
    click.echo("vitalq: first start: created the user admin. Their token (shown once, keep it):")
    click.echo(f"        {token}")
    click.echo(f"vitalq: sign in at http://{host}:{port}/sign-in with it, or export VITALQ_TOKEN={token}")


def _ensure_default_model() -> None:
    from ml.risk import ensure_default_model
    from worker.risk_models import registry

    record = ensure_default_model(registry())
    note = " (demonstration model: not clinically validated)" if record.demo else ""
    click.echo(f"vitalq: risk model v{record.version} {record.name} active, served by {record.runtime}{note}")


# --- using the platform -----------------------------------------------------------------

url_option = click.option("--url", envvar="VITALQ_URL", default=DEFAULT_URL, show_default=True,
                          help="vitalq's address (or VITALQ_URL).")
token_option = click.option("--token", envvar="VITALQ_TOKEN", default=None,
                            help="Your API token (or VITALQ_TOKEN); see `vitalq users`.")


@main.command()
@click.argument("kind")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--param", "-p", "raw_params", multiple=True, metavar="NAME=VALUE", help="A parameter; repeatable.")
@click.option("--priority", type=click.IntRange(0, 9), default=None, help="0 (least urgent) to 9 (most urgent).")
@click.option("--wait", is_flag=True, help="Follow the job's progress and print its result.")
@url_option
@token_option
def submit(kind: str, file: Path | None, raw_params: tuple[str, ...], priority: int | None, wait: bool, url: str,
           token: str | None) -> None:
    """Submit a job of KIND, with FILE as its input if the kind takes one."""
    client = Client(url, token)
    with _api_errors():
        kinds = client.kinds()
        if kind not in kinds:
            raise click.UsageError(f"unknown job kind {kind!r}; known: {', '.join(sorted(kinds))}")
        params = {}
        for raw in raw_params:
            name, sep, value = raw.partition("=")
            if not sep:
                raise click.UsageError(f"--param takes NAME=VALUE, not {raw!r}")
            try:
                params[name] = coerce_param(kinds[kind]["params_schema"], name, value)
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
        uploading = _Progress(f"uploading {file.name}") if file else None
        job = client.submit(kind, params, priority, file, on_upload=uploading)
        click.echo(f"job {job['id']} queued on {job['queue']}", err=True)
        if not wait:
            click.echo(job["id"])
            return
        job = client.wait(job["id"], on_event=_JobProgress())
        if (job.get("result") or {}).get("reliable") is False:  # an rPPG heart rate not to be trusted
            click.echo(f"warning: the heart rate is unreliable: {job['result']['unreliable_reason']}", err=True)
        click.echo(json.dumps(job, indent=2))
        sys.exit(0 if job["status"] == "succeeded" else 1)


@main.command()
@click.option("--kind", default=None)
@click.option("--status", default=None)
@click.option("--limit", default=20, show_default=True)
@url_option
@token_option
def jobs(kind: str | None, status: str | None, limit: int, url: str, token: str | None) -> None:
    """List jobs, newest first."""
    with _api_errors():
        page = Client(url, token).jobs(kind=kind, status=status, limit=limit)
    click.echo(f"{'ID':32}  {'KIND':24} {'STATUS':10} {'PRI':>3} {'PROGRESS':>8}  CREATED")
    for job in page["jobs"]:
        click.echo(f"{job['id']:32}  {job['kind']:24} {job['status']:10} {job['priority']:>3} "
                   f"{job['progress']['fraction'] * 100:7.0f}%  {job['created_at']}")
    click.echo(f"{len(page['jobs'])} of {page['total']}", err=True)


@main.command()
@click.argument("job_id")
@url_option
@token_option
def cancel(job_id: str, url: str, token: str | None) -> None:
    """Cancel a job."""
    with _api_errors():
        job = Client(url, token).cancel(job_id)
    click.echo(f"job {job_id}: {'cancelled' if job['status'] == 'cancelled' else 'asked to stop'}")


@main.command()
@click.argument("job_id")
@url_option
@token_option
def delete(job_id: str, url: str, token: str | None) -> None:
    """Delete a job, with its artifacts and events; a live job is cancelled first, and
    deleted once it has stopped."""
    with _api_errors():
        client = Client(url, token)
        if not client.job(job_id)["finished_at"]:
            client.cancel(job_id)
            click.echo(f"job {job_id}: cancelling", err=True)
            for _message in client.events(job_id):  # until the job's final message closes the socket
                pass
        client.delete(job_id)
    click.echo(f"job {job_id}: deleted")


class _Progress:
    """A progress bar on standard error: redrawn in place on a terminal, else a line each
    time it moves by a tenth (a log keeps every step without thousands of lines)."""

    def __init__(self, label: str):
        self.label, self.shown = label, -1.0
        self.terminal = sys.stderr.isatty()

    def __call__(self, done: float, total: float, status: str = "") -> None:
        fraction = min(done / total, 1.0) if total else 1.0
        counted = f" ({done / 1e6:,.1f} of {total / 1e6:,.1f} MB)" if total > 1 else ""
        line = f"{self.label}: {fraction * 100:5.1f}%{counted} {status}".rstrip()
        if self.terminal:
            width = max(min(shutil.get_terminal_size().columns - len(line) - 4, 40), 10)
            filled = int(round(fraction * width))
            click.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}\033[K", nl=fraction >= 1.0, err=True)
        elif fraction >= 1.0 or fraction - self.shown >= 0.1:
            click.echo(line, err=True)
            self.shown = fraction


class _JobProgress:
    """A job's progress from its websocket: the bar, and each new message on a line of its
    own, whole (in the bar, long messages were cut to the terminal's width)."""

    def __init__(self):
        self.bar, self.message = _Progress("job"), None

    def __call__(self, message: dict) -> None:
        if message["type"] not in ("snapshot", "progress", "status"):
            return
        state = message["job"]["progress"] | {"status": message["job"]["status"]} \
            if message["type"] == "snapshot" else message
        text = state.get("message")
        if text and text != self.message:
            click.echo(f"\r\033[K  {text}" if self.bar.terminal else f"  {text}", err=True)
            self.message = text
        self.bar(state.get("fraction") or 0.0, 1.0, state.get("status", ""))


class _api_errors:
    """Turns an API error into a one-line message and exit code 1."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, _tb):
        if exc_type is ApiError:
            click.echo(f"error {exc.status} {exc.code}: {exc.message}", err=True)
            for field, problem in (exc.details.get("fields") or {}).items():
                click.echo(f"  {field}: {problem}", err=True)
            sys.exit(1)
        if exc_type is not None and issubclass(exc_type, (httpx.TransportError, OSError)):
            click.echo(f"error: cannot reach vitalq: {exc}", err=True)
            sys.exit(1)
        return False


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    main()
