"""Flower behind vitalq's own sign-in: ``/flower/`` is passed through to the Flower
process (started with ``--url_prefix=flower``) for admins, with Flower's basic-auth
credentials added on the way. Flower 2.2+ guards its control API with its own XSRF
token, which passes through untouched.
"""

from __future__ import annotations

import httpx
from flask import Blueprint, Response, request

from vitalq.errors import Unavailable
from worker.settings import get_settings

from .auth import require_admin

bp = Blueprint("flower", __name__)

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
#: Headers that describe one hop, or that vitalq answers for itself.
_NOT_FORWARDED = {"host", "authorization", "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                  "content-length", "content-encoding", "proxy-authorization"}


@bp.route("/flower/", defaults={"path": ""}, methods=METHODS)
@bp.route("/flower/<path:path>", methods=METHODS)
def proxy(path: str):
    require_admin()
    settings = get_settings()
    upstream = settings.flower_upstream.rstrip("/")
    user, _, password = settings.flower_auth.partition(":")
    try:
        answer = httpx.request(
            request.method, f"{upstream}/flower/{path}", params=list(request.args.items(multi=True)),
            content=request.get_data(), timeout=30, auth=(user, password) if password else None,
            headers=[(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED])
    except httpx.TransportError as exc:
        raise Unavailable(f"Flower is not reachable at {upstream}: {exc}") from None
    headers = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _NOT_FORWARDED]
    return Response(answer.content, answer.status_code, headers)
