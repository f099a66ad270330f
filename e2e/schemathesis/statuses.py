"""What a Schemathesis run got back, from its NDJSON report.

    python statuses.py REPORT.ndjson [--expect "POST /v1/uploads=200" ...]

Prints, per operation, how many responses had each status, and fails
(exit 1) when an expected status never came back. A conformance run that
only ever saw 401s (a token the server refused) or only 415s would pass
every check while testing nothing; the expectations make it fail instead.
"""

import argparse
import collections
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="OPERATION=STATUS",
        help='e.g. "POST /v1/uploads=429"',
    )
    args = parser.parse_args()

    seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with open(args.report, encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            for interaction in (recorder.get("interactions") or {}).values():
                response = interaction.get("response")
                if response is None:
                    continue
                # The operation the scenario tested (a probe with another
                # method counts under its own method).
                method = interaction["request"]["method"]
                label = recorder["label"]
                if not label.startswith(method + " "):
                    label = f"{method} {label.split(' ', 1)[1]}"
                seen[label][response["status_code"]] += 1

    for label in sorted(seen):
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(seen[label].items()))
        print(f"  {label:<22} {counts}")

    missing = []
    for item in args.expect:
        label, _, status = item.rpartition("=")
        if not seen[label][int(status)]:
            missing.append(item)
    for item in missing:
        print(f"statuses.py: expected at least one {item}; none came back", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
