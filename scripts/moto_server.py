"""moto's server, handling one request at a time.

moto's DynamoDB backend takes no locks: under concurrent requests the
condition check of a TransactWriteItems and its write can interleave with
another request's. Measured here (moto 5.2.5): of 100 concurrent
transactions conditioned on one version, 2 committed in 1 of 12 trials.
Real DynamoDB is atomic, and uploadgate's contention tests rely on that, so
this wrapper runs moto's own WSGI app behind a lock: connections are still
served concurrently, requests are applied one by one.

Usage: python moto_server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class Serialized:
    """WSGI middleware: one request inside the app at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialise the body inside the lock: the work happens there.
            return list(self.app(environ, start_response))


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, Serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
