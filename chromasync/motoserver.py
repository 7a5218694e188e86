"""moto in server mode, with DynamoDB requests applied one at a time.

moto's server handles each request on its own thread and evaluates a
DynamoDB ``ConditionExpression`` and the write that follows as two steps,
so two concurrent conditional writes can both succeed (measured: two lock
winners in about one run of three with 8 racing threads). Real DynamoDB
makes them one atomic step, and the DynamoDB lock backend relies on that.
This wrapper serialises DynamoDB and DynamoDB Streams requests (SQS and S3
stay concurrent, so long polls do not block anything), which restores the
atomicity the locks need. Run it as ``python -m chromasync.motoserver -p PORT``.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

#: Prefix of the X-Amz-Target header of DynamoDB and DynamoDB Streams requests.
DYNAMODB_TARGET_PREFIX = "DynamoDB"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else as is."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET_PREFIX):
            with self.lock:
                # Consume the body inside the lock: the write happens while iterating.
                return [b"".join(self.app(environ, start_response))]
        return self.app(environ, start_response)


def main(argv: Sequence[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerialisedDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
