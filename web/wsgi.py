"""The WSGI entry point for a server process: structured logs, then the app.

``gunicorn web.wsgi:app`` (what ``vitalq serve web`` runs). Tests build their own app
with ``web.create_app()`` and keep pytest's logging.
"""

from gevent import monkey

if monkey.is_module_patched("socket"):  # under gunicorn's gevent worker
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()  # queries yield to other greenlets instead of blocking the process

from worker.logs import use_structured_logs  # noqa: E402

from . import create_app  # noqa: E402

use_structured_logs()
app = create_app()
