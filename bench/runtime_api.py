"""A minimal Lambda Runtime API on 127.0.0.1, the front for the cold-start
and per-invocation figures of both functions.

It speaks what a runtime client needs: `GET /2018-06-01/runtime/invocation/next`
(blocks until an event is queued; answers it with the request id, deadline and
function ARN headers) and `POST .../invocation/<id>/response` (or `/error`,
or `/runtime/init/error`). It records when each event was handed out and
when its answer came back: the latter minus the former is the duration
Lambda bills.
"""

import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    def __init__(self):
        self.events = queue.Queue()
        self.lock = threading.Condition()
        self.done = {}  # request id -> (t_sent, t_answered, status, body)
        self.sent = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body

            def reply(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != PREFIX + "/invocation/next":
                    return self.reply(404)
                rid, event = api.events.get()
                body = json.dumps(event).encode()
                api.sent[rid] = time.perf_counter()
                self.reply(200, body, [
                    ("content-type", "application/json"),
                    ("lambda-runtime-aws-request-id", rid),
                    ("lambda-runtime-deadline-ms", str(int(time.time() * 1000) + 30000)),
                    ("lambda-runtime-invoked-function-arn",
                     "arn:aws:lambda:us-east-1:123456789012:function:bench"),
                    ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")])

            def do_POST(self):
                t = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = self.path[len(PREFIX):].strip("/").split("/")
                self.reply(202, b'{"status":"OK"}', [("content-type", "application/json")])
                if parts[0] == "invocation" and len(parts) == 3:
                    with api.lock:
                        api.done[parts[1]] = (api.sent.get(parts[1]), t, parts[2], body)
                        api.lock.notify_all()
                elif parts[:2] == ["init", "error"]:
                    with api.lock:
                        api.done["init"] = (None, t, "init-error", body)
                        api.lock.notify_all()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a function stopped mid-poll resets its connection: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, event):
        """Queues one event; returns its request id."""
        rid = str(uuid.uuid4())
        self.events.put((rid, event))
        return rid

    def wait(self, rid, timeout=60):
        """(t_sent, t_answered, kind, body) of one invocation."""
        with self.lock:
            ok = self.lock.wait_for(lambda: rid in self.done or "init" in self.done, timeout)
            if not ok:
                raise TimeoutError(f"no answer to invocation {rid}")
            if "init" in self.done:
                raise RuntimeError("init error: %r" % (self.done["init"][3],))
            return self.done[rid]

    def close(self):
        self.server.shutdown()
