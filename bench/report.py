"""bench/results/*.json -> bench/results/table.md, bench/results/*.png, and
the generated part of bench/README.md (between the `results` markers).

    python bench/report.py "COMMAND" SECONDS
"""

import json
import math
import pathlib
import platform
import re
import statistics
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
RES = HERE / "results"

# Published us-east-1 prices, taken 2026-12-02 (see bench/README.md, "Prices").
PRICE = {
    "wru": 0.625 / 1e6,          # DynamoDB on-demand, per write request unit (since the Nov 2024 cut)
    "rru": 0.125 / 1e6,          # DynamoDB on-demand, per read request unit
    "gbs_arm64": 0.0000133334,   # Lambda duration, arm64, per GB-second (first 7.5 billion GB-s a month)
    "request": 0.20 / 1e6,       # Lambda, per request
}
OURS_MB = 128


def load(name):
    p = RES / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q / 100 * len(xs)) - 1))]


def fmt(x, d=1):
    return f"{x:,.{d}f}"


def baseline_mb(rss_kb):
    """Lambda memory the baseline needs: 128 MB while its peak RSS leaves a
    quarter free, else the next 64 MB step above peak RSS x 1.25."""
    need = max(rss_kb) / 1024 * 1.25
    return 128 if need <= 128 else int(math.ceil(need / 64) * 64)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1024 / 1024
    import os
    return f"{os.cpu_count()} vCPU {cpu}, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main():
    cmd, secs = sys.argv[1], float(sys.argv[2])
    meta = load("meta") or {}
    b, c, lam, floor, tp, arts, inproc = (load(n) for n in
                                          ("over_admission", "calls", "lambda", "floor", "throughput", "artifacts", "inprocess"))
    md, head = [], {}
    md.append(f"Measured {meta.get('date', '?')} on {machine()}, by `{cmd}` ({secs / 60:.1f} min); "
              f"moto {meta.get('moto', '?')}, serialized (`scripts/moto_server.py`), for both designs.\n")

    # 1. over-admission
    if b:
        md.append(f"### 1. Over-admission: {b['burst']} concurrent requests, one fresh user, limit {b['limit']}, {b['trials']} trials\n")
        md.append("| Design | Admitted: min | median | max (worst case) | Trials exactly at the limit | Answers, all trials |")
        md.append("| --- | --- | --- | --- | --- | --- |")
        for d, label in (("ours", f"uploadgate, {b['processes']} `serve` processes"), ("baseline", f"original design, {b['processes']} fronts")):
            a = [t["admitted"] for t in b[d]]
            answers = {}
            for t in b[d]:
                for k, n in t["statuses"].items():
                    answers[k] = answers.get(k, 0) + n
            md.append(f"| {label} | {min(a)} | {statistics.median(a):g} | **{max(a)}** | "
                      f"{sum(x == b['limit'] for x in a)} / {len(a)} | "
                      + ", ".join(f"{n} x {k}" for k, n in sorted(answers.items())) + " |")
            head[f"admit_{d}"] = (min(a), statistics.median(a), max(a))
        md.append("\n![Admitted per trial](results/over_admission.png)\n")
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for d, col in (("baseline", "tab:red"), ("ours", "tab:blue")):
            ax.plot(range(1, len(b[d]) + 1), [t["admitted"] for t in b[d]], "o-", color=col,
                    label={"ours": "uploadgate", "baseline": "original design"}[d])
        ax.axhline(b["limit"], color="gray", ls="--", lw=1, label=f"limit {b['limit']}")
        ax.set(xlabel="trial", ylabel=f"admitted of {b['burst']}",
               title=f"{b['burst']} concurrent requests for one user, limit {b['limit']}: admitted")
        ax.set_xticks(range(1, len(b["ours"]) + 1))
        ax.set_ylim(bottom=0)
        ax.legend()
        fig.tight_layout()
        fig.savefig(RES / "over_admission.png", dpi=110)

    # 2. calls and units
    units = {}
    if c:
        md.append("### 2. DynamoDB calls and capacity units per decision\n")
        md.append("Units are billed per DynamoDB's rules from the item sizes the counting proxy saw "
                  "(`bench/countproxy.py`); moto's own `ConsumedCapacity` is shown beside them.\n")
        md.append("| Decision | uploadgate calls | uploadgate units (moto says) | original calls | original units (moto says) |")
        md.append("| --- | --- | --- | --- | --- |")
        for case in ("allowed warm", "allowed new user", "denied first", "denied repeat", "GET /v1/quota"):
            row = [case]
            for d in ("ours", "baseline"):
                x = c.get(case, {}).get(d)
                if not x:
                    row += ["(no such route)", ""]
                    continue
                ops = ", ".join(f"{n} {op}" for op, n in sorted(x["ops"].items())) or "none"
                u = " + ".join(s for s in (f"{x['wcu']:g} WCU" if x["wcu"] else "", f"{x['rcu']:g} RCU" if x["rcu"] else "") if s) or "0"
                row += [f"{x['calls_mean']:g} ({ops}, over {x['samples']})", f"{u} ({x['reported']:g})"]
                units[(case, d)] = (x["wcu"], x["rcu"])
            md.append("| " + " | ".join(row) + " |")
        md.append("\nThe arithmetic (DynamoDB bills a write per started KB of the larger of the old and new item, "
                  "a failed condition too; a read per started 4 KB, half for an eventually consistent one; "
                  "a Query on the size of the items it reads, at least one 4 KB unit), for the last call of each kind:\n")
        for case, per in c.items():
            for d, x in per.items():
                if x["how"]:
                    md.append(f"- {'uploadgate' if d == 'ours' else 'original'}, {case}: " + "; ".join(x["how"]))
        md.append("")

    # 3-5. Lambda: latency, cold start, dollars
    if lam:
        mb = {"ours": OURS_MB, "baseline": baseline_mb(lam["baseline"]["rss_kb"])}
        fl = floor["getitem_ms"] if floor else []
        md.append("### 4. Latency per decision, through the handler\n")
        md.append("Each function under the Runtime API front (`bench/runtime_api.py`), warm, one invocation at a time: "
                  "from the event handed out to the answer posted (what Lambda bills).\n")
        md.append("| | allowed p50 | allowed p99 | denied p50 | denied p99 | samples |")
        md.append("| --- | --- | --- | --- | --- | --- |")
        for d, label in (("ours", "uploadgate (`POST /v1/uploads`: decision + presign)"), ("baseline", "original design (`/upload-check`: decision only)")):
            a, n = lam[d]["allowed_ms"], lam[d]["denied_ms"]
            md.append(f"| {label} | {fmt(pct(a, 50), 2)} ms | {fmt(pct(a, 99), 2)} ms | {fmt(pct(n, 50), 2)} ms | {fmt(pct(n, 99), 2)} ms | {len(a)} + {len(n)} |")
            head[f"p50_{d}"] = (pct(a, 50), pct(n, 50))
        if fl:
            md.append(f"| emulator floor: one bare consistent `GetItem` (boto3, warm) | {fmt(pct(fl, 50), 2)} ms | {fmt(pct(fl, 99), 2)} ms | | | {len(fl)} |")
        md.append("\n![Latency](results/latency.png)\n")
        fig, ax = plt.subplots(figsize=(7, 3.2))
        labels, p50, p99 = [], [], []
        for d, name in (("ours", "uploadgate"), ("baseline", "original")):
            for k in ("allowed", "denied"):
                xs = lam[d][f"{k}_ms"]
                labels.append(f"{name}\n{k}")
                p50.append(pct(xs, 50))
                p99.append(pct(xs, 99))
        if fl:
            labels.append("GetItem\nfloor")
            p50.append(pct(fl, 50))
            p99.append(pct(fl, 99))
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], p99, 0.4, label="p99")
        ax.set_xticks(list(xs), labels)
        ax.set(ylabel="ms", title="Handler duration per decision, on moto")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RES / "latency.png", dpi=110)

        md.append("### 5. Cold start, memory, deploy artifact\n")
        md.append("From process start to the first answered invocation (an allowed upload, one DynamoDB round trip "
                  "or two included), under the same Runtime API front.\n")
        md.append("| | median cold start | min - max | runs | peak RSS | Lambda memory | deploy artifact |")
        md.append("| --- | --- | --- | --- | --- | --- | --- |")
        for d, label in (("ours", "uploadgate-lambda (Rust `bootstrap`)"), ("baseline", "original (python + awslambdaric + boto3)")):
            cs = lam[d]["cold_ms"]
            art = (arts or {}).get(d, {})
            md.append(f"| {label} | **{fmt(statistics.median(cs))} ms** | {fmt(min(cs))} - {fmt(max(cs))} ms | {len(cs)} | "
                      f"{fmt(max(lam[d]['rss_kb']) / 1024)} MiB | {mb[d]} MB | {art.get('describe', '?')} |")
            head[f"cold_{d}"] = statistics.median(cs)
        md.append("\n![Cold start](results/cold_start.png)\n")
        fig, ax = plt.subplots(figsize=(7, 2.8))
        ax.boxplot([lam["ours"]["cold_ms"], lam["baseline"]["cold_ms"]], orientation="horizontal", tick_labels=["uploadgate", "original"])
        ax.set(xlabel="ms from process start to first answer", title="Cold start")
        fig.tight_layout()
        fig.savefig(RES / "cold_start.png", dpi=110)

        if units:
            md.append("### 3. Dollars per million decisions (us-east-1, on-demand, arm64)\n")
            md.append("Lambda duration billed per invocation rounded up to 1 ms, at the mean measured handler duration above "
                      "(on moto, whose calls are slower than DynamoDB's: durations, and so GB-s, are upper bounds for both).\n")
            md.append("| Decision | Design | DynamoDB units | DynamoDB $ | Lambda GB-s per million | Lambda duration $ | Lambda requests $ | **Total $ / million** |")
            md.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
            rows = [("allowed", "ours", "allowed warm", "allowed_ms"), ("allowed", "baseline", "allowed warm", "allowed_ms"),
                    ("denied (repeat)", "ours", "denied repeat", "denied_ms"), ("denied (first in a process)", "ours", "denied first", "denied_ms"),
                    ("denied", "baseline", "denied repeat", "denied_ms")]
            costs, parts = {}, {}
            for label, d, case, dur in rows:
                wcu, rcu = units[(case, d)]
                ddb = (wcu * PRICE["wru"] + rcu * PRICE["rru"]) * 1e6
                billed = statistics.mean(math.ceil(x) for x in lam[d][dur])
                gbs = mb[d] / 1024 * billed / 1000 * 1e6
                dur_usd = gbs * PRICE["gbs_arm64"]
                req = PRICE["request"] * 1e6
                total = ddb + dur_usd + req
                costs[(label, d)] = total
                parts[(label, d)] = (ddb, dur_usd, req)
                md.append(f"| {label} | {'uploadgate' if d == 'ours' else 'original'} | {wcu:g} WRU + {rcu:g} RRU | ${ddb:.4f} | "
                          f"{fmt(gbs, 0)} ({mb[d]} MB x {billed:.1f} ms) | ${dur_usd:.4f} | ${req:.2f} | **${total:.4f}** |")
            head["usd_allowed"] = (costs[("allowed", "ours")], costs[("allowed", "baseline")])
            head["usd_denied"] = (costs[("denied (repeat)", "ours")], costs[("denied (first in a process)", "ours")], costs[("denied", "baseline")])
            md.append("")
            fig, ax = plt.subplots(figsize=(7, 3.6))
            ks = list(costs)
            names = [f"{l}\n{'uploadgate' if d == 'ours' else 'original'}" for l, d in ks]
            left = [0.0] * len(ks)
            for i, (part, col) in enumerate((("DynamoDB", "tab:purple"), ("Lambda duration", "tab:orange"), ("Lambda requests", "tab:gray"))):
                w = [parts[k][i] for k in ks]
                ax.barh(names, w, left=left, color=col, label=part)
                left = [a + b for a, b in zip(left, w)]
            ax.legend(fontsize=8)
            ax.set(xlabel="US$ per million decisions", title="Cost per million decisions")
            fig.tight_layout()
            fig.savefig(RES / "dollars.png", dpi=110)
            md.append("![Dollars](results/dollars.png)\n")

    # 6. throughput
    if tp:
        md.append("### 6. Throughput of `uploadgate serve` (wrk, keep-alive, on this machine)\n")
        md.append("| Store | `GET /healthz` req/s | `POST /v1/uploads` req/s | uploads / healthz | uploads p50 | uploads p99 | connections |")
        md.append("| --- | --- | --- | --- | --- | --- | --- |")
        for store, x in tp.items():
            h, u = x["healthz"], x["uploads"]
            md.append(f"| {store} | {fmt(h['rps'], 0)} | {fmt(u['rps'], 0)} | {u['rps'] / h['rps']:.2f} | "
                      f"{fmt(u.get('p50', float('nan')), 2)} ms | {fmt(u.get('p99', float('nan')), 2)} ms | {x['connections']} |")
            if u.get("non2xx"):
                md.append(f"|  | | {u['non2xx']} non-2xx answers | | | | |")
        if any("fixed" in x for x in tp.values()):
            md.append("\nAt a fixed rate (wrk's `delay` hook paces each of 8 connections; measured rate beside the target):\n")
            md.append("| Store | target rate | measured `/healthz` / `/v1/uploads` | `/healthz` p50 / p99 | `/v1/uploads` p50 / p99 |")
            md.append("| --- | --- | --- | --- | --- |")
            for store, x in tp.items():
                f = x.get("fixed")
                if f:
                    md.append(f"| {store} | {f['rate']}/s | {fmt(f['healthz']['rps'], 0)} / {fmt(f['uploads']['rps'], 0)} | "
                              f"{fmt(f['healthz']['p50'], 2)} / {fmt(f['healthz']['p99'], 2)} ms | "
                              f"{fmt(f['uploads']['p50'], 2)} / {fmt(f['uploads']['p99'], 2)} ms |")
        md.append("\n![Throughput](results/throughput.png)\n")
        fig, ax = plt.subplots(figsize=(7, 3))
        stores = list(tp)
        xs = range(len(stores))
        ax.bar([x - 0.2 for x in xs], [tp[s]["healthz"]["rps"] for s in stores], 0.4, label="GET /healthz")
        ax.bar([x + 0.2 for x in xs], [tp[s]["uploads"]["rps"] for s in stores], 0.4, label="POST /v1/uploads")
        ax.set_xticks(list(xs), stores)
        ax.set_yscale("log")
        ax.set(ylabel="req/s (log)", title="uploadgate serve, max rate per store")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
        fig.tight_layout()
        fig.savefig(RES / "throughput.png", dpi=110)

    if inproc:
        md.append("### 7. In process, one call at a time\n")
        md.append("| What | time | source |")
        md.append("| --- | --- | --- |")
        for r in inproc["rows"]:
            t = f"{r['ns']:,.1f} ns" if r["ns"] < 1000 else f"{r['ns'] / 1000:,.2f} µs"
            md.append(f"| {r['what']} | {t} | {r['source']} |")
        md.append("")

    # Sections come out in the order of the issue (3 needs 4's durations).
    intro, *chunks = re.split(r"(?m)^(?=### \d)", "\n".join(md))
    text = intro + "".join(sorted(chunks, key=lambda ch: int(ch[4:ch.index(".")]))) + "\n"
    (RES / "table.md").write_text(text)
    (RES / "headline.json").write_text(json.dumps(head, indent=1) + "\n")
    readme = HERE / "README.md"
    r = readme.read_text()
    r = re.sub(r"(<!-- results:begin -->\n).*?(<!-- results:end -->)", lambda m: m.group(1) + text + m.group(2), r, flags=re.S)
    readme.write_text(r)
    print(text)


if __name__ == "__main__":
    main()
