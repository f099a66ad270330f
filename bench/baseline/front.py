"""An HTTP front for the baseline handler, as API Gateway is for the Lambda.

Each request becomes an API Gateway REST (1.0) event for `handler.handler`
on its own thread, so concurrent requests run concurrently, as concurrent
Lambda instances would. Usage: python front.py HOST PORT
"""

import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import handler


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as written, no 40 ms delayed-ACK stall

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        event = {"resource": self.path, "path": self.path, "httpMethod": "POST",
                 "headers": dict(self.headers), "body": body, "isBase64Encoded": False,
                 "requestContext": {"requestId": str(uuid.uuid4()),
                                    "identity": {"sourceIp": self.client_address[0]}}}
        out = handler.handler(event, None)
        data = out["body"].encode()
        self.send_response(out["statusCode"])
        for k, v in out.get("headers", {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # liveness, for the harness
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 512
    ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Front).serve_forever()
