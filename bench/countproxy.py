"""A counting proxy in front of the DynamoDB emulator.

Forwards every request unchanged except for one field: DynamoDB data calls
get `ReturnConsumedCapacity=TOTAL`, so the emulator reports units for them
(the response passes through byte for byte; clients ignore the extra field).
Records, per call: operation, outcome, the units the emulator reported, and
what DynamoDB's rules bill for it (see `billed`). `GET /__calls` returns the
records since the last read and clears them.

Usage: python countproxy.py PORT UPSTREAM_URL
"""

import base64
import http.client
import json
import math
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA_OPS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
            "TransactWriteItems", "TransactGetItems", "BatchGetItem", "BatchWriteItem"}


def value_size(v):
    """Bytes of one attribute value, per DynamoDB's item-size rules."""
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "N":  # ~1 byte per two significant digits, plus one
        digits = x.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if t == "B":
        return len(base64.b64decode(x))
    if t in ("BOOL", "NULL"):
        return 1
    if t in ("SS", "NS", "BS"):
        return sum(value_size({t[0]: e}) for e in x)
    if t == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    raise ValueError(t)


def item_size(item):
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


class Calls:
    def __init__(self):
        self.lock = threading.Lock()
        self.records = []
        self.sizes = {}  # table -> size of the last item written (for Query reads)

    def add(self, rec):
        with self.lock:
            self.records.append(rec)

    def take(self):
        with self.lock:
            out, self.records = self.records, []
            return out


CALLS = Calls()


def billed(op, req, status, resp):
    """Units DynamoDB bills for the call, with the arithmetic behind them."""
    if op == "PutItem":
        size = item_size(req["Item"])
        CALLS.sizes[req["TableName"]] = size
        # A write bills the larger of old and new item; both are this size
        # here, give or take one entry. A failed condition bills the same.
        return math.ceil(size / 1024), "WCU", f"PutItem of a {size} B item: ceil({size}/1024)"
    if op == "GetItem":
        consistent = req.get("ConsistentRead", False)
        size = item_size(resp.get("Item", {})) if status == 200 else 0
        u = math.ceil(max(size, 1) / 4096) * (1 if consistent else 0.5)
        return u, "RCU", (f"{'consistent' if consistent else 'eventual'} GetItem of {size} B: "
                          f"ceil({size}/4096){'' if consistent else ' x 0.5'}")
    if op == "Query":
        consistent = req.get("ConsistentRead", False)
        scanned = resp.get("ScannedCount", 0)
        size = scanned * CALLS.sizes.get(req["TableName"], 0)
        u = math.ceil(max(size, 1) / 4096) * (1 if consistent else 0.5)
        return u, "RCU", (f"{'consistent' if consistent else 'eventual'} Query reading {scanned} items, "
                          f"{size} B: ceil(max({size}, 1)/4096){'' if consistent else ' x 0.5'}")
    if op == "TransactWriteItems":
        n = len(req["TransactItems"])
        return 2 * n, "WCU", f"TransactWriteItems of {n} items under 1 KB: 2 x {n}"
    return 0, "units", op


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as written, no 40 ms delayed-ACK stall
    upstream = None
    local = threading.local()

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            u = urllib.parse.urlsplit(self.upstream)
            c = self.local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        return c

    def do_GET(self):
        if self.path.startswith("/__calls"):
            data = json.dumps(CALLS.take()).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.forward(b"")

    def do_POST(self):
        self.forward(self.rfile.read(int(self.headers.get("content-length") or 0)))

    def forward(self, body):
        op = (self.headers.get("x-amz-target") or ".").split(".", 1)[1]
        req = None
        if op in DATA_OPS:
            req = json.loads(body)
            req["ReturnConsumedCapacity"] = "TOTAL"
            body = json.dumps(req).encode()
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("content-length", "connection", "host")}
        headers["content-length"] = str(len(body))
        try:
            c = self.conn()
            c.request(self.command, self.path, body=body, headers=headers)
            r = c.getresponse()
        except (http.client.HTTPException, OSError):
            self.local.conn = None
            c = self.conn()
            c.request(self.command, self.path, body=body, headers=headers)
            r = c.getresponse()
        data = r.read()
        if req is not None:  # recorded before the answer, so a reader after it sees the call
            resp = json.loads(data or b"{}")
            cc = resp.get("ConsumedCapacity") or {}
            if isinstance(cc, list):
                reported = sum(x.get("CapacityUnits", 0) for x in cc)
            else:
                reported = cc.get("CapacityUnits")
            units, kind, how = billed(op, req, r.status, resp)
            how += f" = {units:g} {kind}"
            CALLS.add({"op": op, "status": r.status,
                       "error": (resp.get("__type") or "").split("#")[-1] or None,
                       "reported": reported, "units": units, "kind": kind, "how": how})
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    Proxy.upstream = sys.argv[2]
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Proxy).serve_forever()
