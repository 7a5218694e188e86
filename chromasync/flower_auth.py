"""Flower with every request behind its basic auth, but the health check.

Flower checks basic auth only in the handlers it decorates: its pages and
``/api/...``. ``/metrics`` (Prometheus: every worker's name, task names and
counts), ``/static/...``, ``/favicon.ico``, ``/robots.txt`` (served by Tornado
itself), ``/login``, ``/logout`` and the 404 page answer anyone (Flower 2.2).

This module is what ``chromasync flower`` execs instead of ``python -m celery``:
Celery's command line, with Flower's application class replaced by
:class:`GuardedFlower`, which checks the credentials when Tornado picks the
handler of a request, before any handler runs. One check at the door rather
than one per handler: Tornado's own static routes and Flower's handler
factories (``/login``) are covered, and so is any route a later Flower adds.
Only :data:`OPEN_PATHS` pass without credentials.

Run as ``python -m chromasync.flower_auth flower --port=5555 ...``; the
credentials come from ``FLOWER_BASIC_AUTH`` (``user:password``, comma-separated
for several), as Flower reads them. Without any (``--no-auth``) nothing changes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import sys
from typing import Any

from flower.app import Flower
from tornado.httputil import HTTPMessageDelegate, HTTPServerRequest
from tornado.web import RequestHandler

#: Paths answered without credentials: the health check says "OK" and nothing else, and
#: load balancers and container probes (an ALB target group, a Docker or Kubernetes
#: probe) cannot or should not hold the password; the port answering says as much.
OPEN_PATHS = frozenset({"/healthcheck"})
#: The realm of the ``WWW-Authenticate`` challenge (Flower's own, so browsers reuse it).
REALM = "flower"


def authorized(header: str, credentials: list[str]) -> bool:
    """Whether an ``Authorization`` header holds one of ``credentials`` (``user:password``)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    # Compared with every entry: the time taken does not say which one matched.
    matches = [hmac.compare_digest(given, entry.encode()) for entry in credentials]
    return any(matches)


class Unauthorized(RequestHandler):
    """The answer to any request without the credentials: 401 and a basic-auth challenge."""

    def check_xsrf_cookie(self) -> None:
        """Nothing to protect here (it changes nothing): a POST gets the same 401, not 403."""

    def prepare(self) -> None:
        self.set_status(401)
        self.set_header("WWW-Authenticate", f'Basic realm="{REALM}"')
        self.finish("Access denied")


class GuardedFlower(Flower):
    """Flower's application, asking every request but :data:`OPEN_PATHS` for the credentials."""

    def open_paths(self) -> frozenset[str]:
        """:data:`OPEN_PATHS` under Flower's ``--url_prefix``, if it has one."""
        prefix = str(getattr(self.options, "url_prefix", "") or "").strip("/")
        return frozenset(f"/{prefix}{path}" if prefix else path for path in OPEN_PATHS)

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> HTTPMessageDelegate:
        credentials = list(getattr(self.options, "basic_auth", None) or [])
        if (
            credentials
            and request.path not in self.open_paths()
            and not authorized(request.headers.get("Authorization", ""), credentials)
        ):
            return self.get_handler_delegate(request, Unauthorized)
        return super().find_handler(request, **kwargs)


def main() -> None:
    """``python -m celery`` with Flower's application guarded first."""
    import flower.command

    # Flower's command builds the application from this module attribute when it runs.
    flower.command.Flower = GuardedFlower
    from celery.__main__ import main as celery_main

    sys.argv[0] = "celery"
    celery_main()


if __name__ == "__main__":
    main()
