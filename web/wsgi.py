"""The WSGI entry point for a server process: structured logs, then the app.

``gunicorn web.wsgi:app`` (what ``vitalq serve web`` runs). Tests build their own app
with ``web.create_app()`` and keep pytest's logging.
"""

from worker.logs import use_structured_logs

from . import create_app

use_structured_logs()
app = create_app()
