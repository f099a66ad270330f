"""uploadgate against the original design, side by side, on one emulator.

    python bench/bench.py guard          # invariants only (CI): over-admission + calls per decision
    python bench/bench.py all            # every measurement; writes bench/results/*.json

Environment: AWS_ENDPOINT_URL_DYNAMODB (moto, serialized: scripts/moto.sh),
UG_BIN (the `uploadgate` binary), UG_LAMBDA_BIN (the Lambda `bootstrap`,
for `all`), UG_TRIALS (burst trials, default 20), UG_RESULTS (output dir).
Every process this starts listens on 127.0.0.1 and is stopped by PID.
"""

import collections
import http.client
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

import boto3

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
MOTO = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
UG_BIN = os.environ.get("UG_BIN", "uploadgate")
RESULTS = pathlib.Path(os.environ.get("UG_RESULTS", HERE / "results"))
RUN = pathlib.Path(os.environ.get("UG_RUN_DIR", "/tmp")) / f"ug-bench-{os.getpid()}"
TRIALS = int(os.environ.get("UG_TRIALS", "20"))
LIMIT, BURST, SERVERS = 5, 100, 4
TAG = uuid.uuid4().hex[:8]  # fresh users and tables per run
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
UPLOAD = json.dumps({"filename": "report.pdf", "contentType": "application/pdf", "size": 123456})
PROCS = []


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, cmd, env, cwd=None):
    RUN.mkdir(parents=True, exist_ok=True)
    out = open(RUN / f"{name}.log", "ab")
    # Only the settings given here: none leak in from the caller's environment.
    base = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADGATE_")}
    p = subprocess.Popen(cmd, env={**base, **AWS_ENV, **env}, cwd=cwd, stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_all():
    for p in PROCS:
        stop(p)


def wait_http(port, path, proc, secs=60):
    t = time.time() + secs
    while time.time() < t:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}); see {RUN}")
        try:
            request(port, "GET", path)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not answering")


def request(port, method, path, body=None, headers=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t = time.perf_counter()
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t
    if conn is None:
        c.close()
    return r.status, dt, data


# --- the two designs behind HTTP -------------------------------------------

def serve(endpoint, table, store="dynamodb", limits=f"uploads=user:{LIMIT}/3h", name="serve"):
    """One `uploadgate serve`: header identity (x-user-id stands in for a
    verified identity: the decision path is the same), S3 target (presigning
    is local; nothing is uploaded)."""
    port = free_port()
    env = {"UPLOADGATE_STORE": store, "UPLOADGATE_TABLE": table, "UPLOADGATE_LIMITS": limits,
           "UPLOADGATE_IDENTITY": "header", "UPLOADGATE_TARGET": "s3",
           "UPLOADGATE_LISTEN": f"127.0.0.1:{port}", "UPLOADGATE_LOG": "warn",
           "UPLOADGATE_DATA_DIR": str(RUN / f"data-{port}"),
           "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}
    p = start(f"{name}-{port}", [UG_BIN, "serve"], env)
    wait_http(port, "/healthz", p)
    return port


def front(endpoint, table, name="baseline"):
    """The baseline handler behind a threaded HTTP front (one thread per
    request, like one Lambda instance per concurrent request)."""
    port = free_port()
    env = {"TABLE_NAME": table, "UPLOAD_LIMIT": str(LIMIT), "AWS_ENDPOINT_URL_DYNAMODB": endpoint}
    p = start(f"{name}-{port}", [sys.executable, "front.py", "127.0.0.1", str(port)], env,
              cwd=HERE / "baseline")
    wait_http(port, "/", p)
    return port


def ours_req(user):
    return "POST", "/v1/uploads", UPLOAD, {"x-user-id": user, "content-type": "application/json"}


def base_req(user):
    return "POST", "/upload-check", json.dumps({"userId": user}), {"content-type": "application/json"}


def tables(section):
    """Both designs' tables on the emulator, fresh for each section: moto's
    Query slows down with the size of the whole table (DynamoDB's reads one
    partition), so the bursts' items must not weigh on later figures."""
    ours, base = f"uploadgate-bench-{TAG}-{section}", f"UploadTracker-{TAG}-{section}"
    subprocess.run([UG_BIN, "table", "create"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **AWS_ENV, "UPLOADGATE_STORE": "dynamodb", "UPLOADGATE_TABLE": ours})
    ddb = boto3.client("dynamodb", endpoint_url=MOTO, **aws_kw())
    ddb.create_table(TableName=base, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "S"},
                                           {"AttributeName": "timestamp", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"},
                                {"AttributeName": "timestamp", "KeyType": "RANGE"}])
    ddb.update_time_to_live(TableName=base, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expireAt"})
    return ours, base


def aws_kw():
    return {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --- 1. over-admission under a burst ------------------------------------------

def burst(ports, make):
    """BURST requests for one fresh user, all released at once, spread over
    the processes in `ports`; returns the statuses."""
    conns = [http.client.HTTPConnection("127.0.0.1", ports[i % len(ports)], timeout=120) for i in range(BURST)]
    for c in conns:
        c.connect()
    gate, out = threading.Barrier(BURST), [None] * BURST
    method, path, body, headers = make

    def go(i):
        gate.wait()
        try:
            out[i] = request(None, method, path, body, headers, conn=conns[i])[0]
        except Exception as e:  # a broken answer is reported, never counted as admitted
            out[i] = repr(e)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return out


def over_admission(ours_t, base_t):
    ours_ports = [serve(MOTO, ours_t, name="burst-ours") for _ in range(SERVERS)]
    base_ports = [front(MOTO, base_t, name="burst-base") for _ in range(SERVERS)]
    res = {"limit": LIMIT, "burst": BURST, "processes": SERVERS, "trials": TRIALS, "ours": [], "baseline": []}
    for trial in range(TRIALS):
        for design, ports, make in (("ours", ours_ports, ours_req), ("baseline", base_ports, base_req)):
            t = time.perf_counter()
            st = burst(ports, make(f"burst-{TAG}-{design}-{trial}"))
            res[design].append({"admitted": st.count(200), "statuses": dict(collections.Counter(map(str, st))),
                                "seconds": round(time.perf_counter() - t, 3)})
        log(f"burst trial {trial + 1}/{TRIALS}: admitted ours {res['ours'][-1]['admitted']}, "
            f"baseline {res['baseline'][-1]['admitted']}")
    return res


# --- 2. DynamoDB calls and units per decision -----------------------------------

def calls_per_decision(ours_t, base_t, users=3):
    """Through a counting proxy: each case's calls, the emulator's reported
    units and the units DynamoDB's rules bill (see countproxy.py)."""
    pport = free_port()
    p = start("countproxy", [sys.executable, str(HERE / "countproxy.py"), str(pport), MOTO], {})
    proxy = f"http://127.0.0.1:{pport}"
    wait_http(pport, "/__calls", p)

    def take():
        return json.loads(request(pport, "GET", "/__calls")[2])

    a, b = serve(proxy, ours_t, name="calls-ours-a"), serve(proxy, ours_t, name="calls-ours-b")
    base = front(proxy, base_t, name="calls-base")
    cases = collections.defaultdict(lambda: {"ours": [], "baseline": []})

    def case(name, design, port, req, expect):
        take()
        status = request(port, *req)[0]
        assert status == expect, f"{design} {name}: status {status}, expected {expect}"
        cases[name][design].append(take())

    for i in range(users):
        u = f"calls-{TAG}-{i}"
        for design, first, other, make in (("ours", a, b, ours_req), ("baseline", base, base, base_req)):
            case("allowed new user", design, first, make(u), 200)
            for _ in range(LIMIT - 1):
                case("allowed warm", design, first, make(u), 200)
            # A process that has not seen the user over the limit: `other`
            # (another serve process: another Lambda container), then again.
            case("denied first", design, other, make(u), 429)
            case("denied repeat", design, other, make(u), 429)
            case("denied repeat", design, first, make(u), 429)
        take()
        request(a, "GET", "/v1/quota", headers={"x-user-id": u})
        cases["GET /v1/quota"]["ours"].append(take())
    out = {}
    for name, per in cases.items():
        out[name] = {}
        for design, samples in per.items():
            if not samples:
                continue
            n = len(samples)
            flat = [c for s in samples for c in s]
            out[name][design] = {
                "samples": n,
                "calls": [len(s) for s in samples],
                "calls_mean": sum(len(s) for s in samples) / n,
                "ops": dict(collections.Counter(c["op"] + (f" ({c['error']})" if c["error"] else "") for c in flat)),
                "wcu": sum(c["units"] for c in flat if c["kind"] == "WCU") / n,
                "rcu": sum(c["units"] for c in flat if c["kind"] == "RCU") / n,
                "reported": sum(c["reported"] or 0 for c in flat) / n,
                "how": [c["how"] for c in samples[-1]],
            }
    return out


# --- 4. and 5. the Lambda functions: cold start, billed duration ---------------

def lambda_runs(ours_t, base_t, runs=10, users=6):
    from runtime_api import RuntimeApi  # noqa: E402 (bench/ is on sys.path)
    lam = os.environ.get("UG_LAMBDA_BIN", "uploadgate-lambda")
    runs = int(os.environ.get("UG_LAMBDA_RUNS", runs))
    fixture = json.loads((ROOT / "crates/uploadgate-lambda/tests/data/function_url_uploads.json").read_text())
    rest = json.loads((ROOT / "crates/uploadgate-lambda/tests/data/apigw_rest_upload_check.json").read_text())

    def ours_event(user):
        e = json.loads(json.dumps(fixture))
        e["headers"]["x-user-id"] = user
        e["headers"].pop("x-request-id", None)
        e["body"] = UPLOAD
        e["headers"]["content-length"] = str(len(UPLOAD))
        return e

    def base_event(user):
        e = json.loads(json.dumps(rest))
        e["body"] = json.dumps({"userId": user})
        return e

    common = {"AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
              "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
              "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_ENDPOINT_URL_DYNAMODB": MOTO}
    designs = {
        "ours": ([lam], {"UPLOADGATE_STORE": "dynamodb", "UPLOADGATE_TABLE": ours_t, "UPLOADGATE_TARGET": "s3",
                         "UPLOADGATE_BUCKET": "uploads", "UPLOADGATE_IDENTITY": "header",
                         "UPLOADGATE_LIMITS": f"uploads=user:{LIMIT}/3h",
                         "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}, None, ours_event),
        "baseline": ([sys.executable, "-m", "awslambdaric", "handler.handler"],
                     {"TABLE_NAME": base_t, "UPLOAD_LIMIT": str(LIMIT), "LAMBDA_TASK_ROOT": str(HERE / "baseline")},
                     HERE / "baseline", base_event),
    }
    out = {}
    for design, (cmd, env, cwd, event) in designs.items():
        if design not in os.environ.get("UG_LAMBDA_DESIGNS", "ours,baseline").split(","):
            continue
        r = out[design] = {"cold_ms": [], "rss_kb": [], "allowed_ms": [], "denied_ms": [], "cmd": " ".join(cmd)}
        for run in range(runs):
            api = RuntimeApi()
            rid = api.invoke(event(f"lam-{TAG}-{design}-{run}-cold"))
            t0 = time.perf_counter()
            p = start(f"lambda-{design}", cmd, {**common, **env, "AWS_LAMBDA_RUNTIME_API": api.address}, cwd=cwd)
            _, t1, kind, body = api.wait(rid)
            assert kind == "response", f"{design}: first invocation failed: {body[:300]!r}"
            r["cold_ms"].append((t1 - t0) * 1000)
            for u in range(users):
                user = f"lam-{TAG}-{design}-{run}-{u}"
                for i in range(LIMIT + 3):
                    sent, done, kind, body = api.wait(api.invoke(event(user)))
                    status = json.loads(body).get("statusCode")
                    assert kind == "response" and status == (200 if i < LIMIT else 429), (design, i, body[:300])
                    r["allowed_ms" if i < LIMIT else "denied_ms"].append((done - sent) * 1000)
            r["rss_kb"].append(peak_rss_kb(p.pid))
            stop(p)
            api.close()
        log(f"lambda {design}: cold start median {statistics.median(r['cold_ms']):.1f} ms, "
            f"peak RSS {max(r['rss_kb']) / 1024:.1f} MiB")
    return out


def peak_rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def floor_getitem(table, n=300):
    """The emulator's own floor: one bare GetItem from a warm client."""
    ddb = boto3.client("dynamodb", endpoint_url=MOTO, **aws_kw())
    key = {"pk": {"S": "user#floor"}}
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
        ms.append((time.perf_counter() - t) * 1000)
    return ms


def artifacts():
    """What each design deploys: ours its `bootstrap` (stripped, and zipped);
    the original its handler file (boto3 comes with the Python runtime)."""
    import io
    import zipfile

    def zipped(files):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for arc, path in files:
                z.write(path, arc)
        return len(buf.getvalue())

    lam = pathlib.Path(os.environ["UG_LAMBDA_BIN"])
    stripped = RUN / "bootstrap"
    subprocess.run(["strip", "-o", str(stripped), str(lam)], check=True)
    import boto3 as b3, botocore, s3transfer, jmespath, dateutil, urllib3  # noqa: E401
    sdk = sum(f.stat().st_size for m in (b3, botocore, s3transfer, jmespath, dateutil, urllib3)
              for f in pathlib.Path(m.__file__).parent.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    ours = {"binary": lam.stat().st_size, "stripped": stripped.stat().st_size, "zip": zipped([("bootstrap", stripped)])}
    ours["describe"] = (f"`bootstrap` {mib(ours['stripped'])} stripped, zip {mib(ours['zip'])} "
                        f"(x86_64 here; `scripts/lambda-zip.sh` builds the arm64 one)")
    base = {"zip": zipped([("handler.py", HERE / "baseline/handler.py")]), "sdk_bytes": sdk}
    base["describe"] = (f"`handler.py` zip {base['zip']:,} B, boto3 from the runtime "
                        f"(bundled, boto3 {b3.__version__} and its dependencies would add {mib(sdk)} unzipped)")
    return {"ours": ours, "baseline": base}


# --- 6. throughput of `uploadgate serve` ----------------------------------------

# A fresh user per request, so the load is all admissions.
WRK_UPLOAD = """
request = function()
  return wrk.format("POST", "/v1/uploads", {["content-type"] = "application/json",
    ["x-user-id"] = "load-" .. math.random(1, 1000000000)}, '%s')
end
"""
# A fixed rate: each connection waits its share before every request
# (wrk's own delay hook).
WRK_PACE = """
delay = function() return %d end
"""


def wrk(port, path, secs, conns, lua=None, threads=1):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", f"http://127.0.0.1:{port}{path}"]
    if lua:
        cmd[1:1] = ["-s", lua]
    txt = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = {"raw": txt}
    for line in txt.splitlines():
        w = line.split()
        if line.startswith("Requests/sec:"):
            res["rps"] = float(w[1])
        elif len(w) == 2 and w[0] in ("50%", "99%"):
            res["p" + w[0].rstrip("%")] = to_ms(w[1])
        elif "Non-2xx" in line:
            res["non2xx"] = int(w[-1])
    return res


def to_ms(s):
    for suffix, f in (("us", 1e-3), ("ms", 1), ("s", 1000)):
        if s.endswith(suffix) and not (suffix == "s" and s.endswith(("us", "ms"))):
            return float(s[: -len(suffix)]) * f
    raise ValueError(s)


def throughput(ours_t, secs=5, conns=64, paced_conns=8):
    rates = {"memory": 1000, "file": 1000, "dynamodb": 100}
    out = {}
    # Limits high enough that the load is all admissions (the production
    # policy's 5/3h would turn it into denials after a few requests).
    limits = "uploads=user:1500/1h"
    for store in ("memory", "file", "dynamodb"):
        port = serve(MOTO, ours_t, store=store, limits=limits, name=f"load-{store}")
        c = 8 if store == "dynamodb" else conns  # moto serves ~100 calls/s, one at a time
        s = secs * 2 if store == "dynamodb" else secs
        pace = WRK_PACE % (paced_conns * 1000 // rates[store])
        upload, upload_paced, paced = (RUN / f"{n}.lua" for n in ("upload", "upload-paced", "paced"))
        upload.write_text(WRK_UPLOAD % UPLOAD)
        upload_paced.write_text(WRK_UPLOAD % UPLOAD + pace)
        paced.write_text(pace)
        out[store] = {"healthz": wrk(port, "/healthz", s, c), "uploads": wrk(port, "/v1/uploads", s, c, upload),
                      "connections": c, "seconds": s,
                      "fixed": {"rate": rates[store], "connections": paced_conns,
                                "healthz": wrk(port, "/healthz", s, paced_conns, paced),
                                "uploads": wrk(port, "/v1/uploads", s, paced_conns, upload_paced)}}
        log(f"throughput {store}: healthz {out[store]['healthz'].get('rps')} req/s, "
            f"uploads {out[store]['uploads'].get('rps')} req/s")
    return out


# --- 7. in process ----------------------------------------------------------------

def inprocess():
    """Criterion's figures for each algorithm's decision and a governor check
    (bench/inprocess), and the http bench's one-at-a-time breakdown (router,
    presign, Limiter::consume; crates/uploadgate/benches/http)."""
    import re
    rows = []
    out = subprocess.run(["cargo", "bench", "--locked", "--manifest-path", str(HERE / "inprocess/Cargo.toml"),
                          "--bench", "decide", "--", "--warm-up-time", "1", "--measurement-time", "3"],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    name = None
    for line in out.splitlines():
        m = re.match(r"^(\S.*?)?\s*time:\s+\[\S+ \S+ (\S+) (\S+) ", line)
        if m:
            unit = {"ps": 1e-3, "ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6}[m.group(3)]
            rows.append({"what": (m.group(1) or name).split("/", 1)[-1], "ns": float(m.group(2)) * unit,
                         "source": "bench/inprocess (criterion, median)"})
        elif line.startswith("decision/"):
            name = line.strip()
    env = {**os.environ, "UG_BENCH_PHASES": "healthz", "UG_BENCH_SECS": "1", "UG_BENCH_WARMUP": "0.5",
           "UG_BENCH_ROUNDS": "1", "UG_BENCH_BREAKDOWN_SECS": "2"}
    out = subprocess.run(["cargo", "bench", "--locked", "-p", "uploadgate", "--bench", "http"], env=env,
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    on = False
    for line in out.splitlines():
        if line.startswith("breakdown:"):
            on = True
            continue
        m = re.match(r"^  (\S.*?)\s+([\d.]+) µs$", line) if on else None
        if m:
            rows.append({"what": m.group(1), "ns": float(m.group(2)) * 1e3,
                         "source": "cargo bench -p uploadgate --bench http (breakdown)"})
        elif on and line.strip() and not line.startswith("  "):
            on = False
    return {"rows": rows}


# --- main ------------------------------------------------------------------------

def save(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def check(burst_res, calls):
    """The non-timing invariants. Returns the failures."""
    bad = []
    for i, (o, b) in enumerate(zip(burst_res["ours"], burst_res["baseline"])):
        print(f"burst trial {i + 1:2d}: ours admitted {o['admitted']:3d}   baseline admitted {b['admitted']:3d}")
        if o["admitted"] != LIMIT:
            bad.append(f"trial {i + 1}: ours admitted {o['admitted']} of {BURST}, not {LIMIT} ({o['statuses']})")
    for name, want in (("allowed warm", 1), ("allowed new user", 1), ("denied first", 1), ("denied repeat", 0)):
        got, base = calls[name]["ours"]["calls"], calls[name]["baseline"]["calls"]
        print(f"calls per decision, {name:16s}: ours {got} (want {want} each)   baseline {base}")
        if any(c != want for c in got):
            bad.append(f"{name}: ours made {got} DynamoDB calls, expected {want} each")
    return bad


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "all"
    sys.path.insert(0, str(HERE))
    sections = ["burst", "calls", "lambda", "floor", "artifacts", "throughput", "inprocess"]
    chosen = sections if mode == "all" else ["burst", "calls"] if mode == "guard" else mode.split(",")
    meta_path = RESULTS / "meta.json"
    if mode == "all":  # nothing stale survives a full run
        for old in RESULTS.glob("*.json"):
            old.unlink()
    meta = json.loads(meta_path.read_text()) if mode != "all" and meta_path.exists() else {}
    meta.update({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "trials": TRIALS,
                 "moto": os.environ.get("UG_MOTO_VERSION", meta.get("moto", "?"))})
    got, failed = {}, []
    names = {"burst": "over_admission"}
    try:
        for name in chosen:
            t = time.time()
            try:
                ours_t, base_t = tables(name)
                got[name] = {
                    "burst": lambda: over_admission(ours_t, base_t),
                    "calls": lambda: calls_per_decision(ours_t, base_t),
                    "lambda": lambda: lambda_runs(ours_t, base_t),
                    "floor": lambda: {"getitem_ms": floor_getitem(ours_t)},
                    "artifacts": artifacts,
                    "throughput": lambda: throughput(ours_t),
                    "inprocess": inprocess,
                }[name]()
            except Exception as e:  # report it, keep the other sections
                if mode == "guard":
                    raise
                failed.append(name)
                log(f"{name} FAILED: {e!r}")
                continue
            finally:
                stop_all()
            meta[f"{name}_seconds"] = round(time.time() - t, 1)
            log(f"{name}: {meta[name + '_seconds']} s")
            if mode != "guard":
                save(names.get(name, name), got[name])
                save("meta", meta)
    finally:
        stop_all()
    if "burst" in got and "calls" in got:
        bad = check(got["burst"], got["calls"])
        if mode == "guard":
            for f in bad:
                print("FAILED:", f)
            checks = TRIALS + 4
            print(f"bench guard: {checks - len(bad)} passed, {len(bad)} failed")
            return 1 if bad else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
