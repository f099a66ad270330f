"""Time from process start to the first answered request, for the Lambda
binary (run by e2e/lambda/measure.sh; a measurement, not a test).

Against cargo lambda watch --only-lambda-apis (the emulated runtime API and
function URLs, with no function of its own), each run:

 1. sends the request through the emulated function URL; it waits in the
    runtime API's queue, since no function instance is polling yet;
 2. waits 0.5 s so the event is surely queued, then records t0 and starts
    the binary (a fresh process, as in a cold start);
 3. records t1 when the response arrives, reads the process's VmHWM (peak
    RSS), and kills it.

t1 - t0 covers exec, configuration, the AWS SDK configuration, the DynamoDB
and S3 clients, the runtime loop's first poll, the request itself (for
POST /v1/uploads: one DynamoDB write on moto and the presigner's first
signature) and the response's way back through the emulator.

    python3 startup.py BINARY RUNTIME_API BASE_URL RUNS

Environment: the function's settings (UPLOADGATE_*, AWS_*), passed on;
LAMBDA_EXEC_PREFIX, a command to run the binary under (qemu-aarch64 ...).
"""

import http.client
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid


PREFIX = shlex.split(os.environ.get("LAMBDA_EXEC_PREFIX", ""))


def request(url, method, body, headers):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    conn.request(method, u.path, body=body, headers=headers)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, data


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def one_run(binary, runtime_api, base, path):
    done = {}

    def send():
        if path == "/v1/uploads":
            body = json.dumps({"filename": "a.pdf", "contentType": "application/pdf", "size": 1000})
            headers = {"x-user-id": f"startup-{uuid.uuid4().hex[:12]}", "content-type": "application/json"}
            done["status"], _ = request(base + path, "POST", body.encode(), headers)
        else:
            done["status"], _ = request(base + path, "GET", None, {})
        done["t1"] = time.perf_counter()

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=runtime_api,
        AWS_LAMBDA_FUNCTION_NAME="uploadgate-lambda",
        AWS_LAMBDA_FUNCTION_VERSION="1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(PREFIX + [binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sender.join(timeout=120)
    rss = peak_rss_kib(proc.pid) if proc.poll() is None else -1
    proc.kill()
    proc.wait()
    if done.get("status") != 200:
        raise SystemExit(f"{path}: answered {done.get('status')}")
    return (done["t1"] - t0) * 1000, rss


def main():
    binary, runtime_api, base, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    for path in ("/healthz", "/v1/uploads"):
        ms, rss = [], []
        for _ in range(runs):
            m, r = one_run(binary, runtime_api, base, path)
            ms.append(m)
            rss.append(r)
        print(
            f"{path:12} start to first answer: median {statistics.median(ms):.1f} ms "
            f"(min {min(ms):.1f}, max {max(ms):.1f}, {runs} runs: "
            + ", ".join(f"{m:.1f}" for m in ms)
            + f"); peak RSS after it: median {statistics.median(rss) / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    main()
