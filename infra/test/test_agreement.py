"""The Lambda functions and infra/modules/uploadgate agree: main.tf's settings
map holds every setting the gate function reads and nothing else (null where
it does not apply, and then not sent), and iam.tf grants exactly the IAM
actions of the operations it can perform, on the table and the upload prefix
only. The same holds for the settle function (charge = "upload"): main.tf's
settle_settings map and settle.tf's role, with each action on the resources
it is for (the limits or the usage table, the upload prefix, the event or the
accepted queue).

Nothing here reads Rust; the facts come from the tools. `cargo run -p
uploadgate-lambda --example manifest` (and `-p uploadgate-settle-lambda`) prints the settings the function reads,
its defaults, and every AWS operation the store and presigner crates declare
next to their calls (tested there against what their clients send), each
with its IAM action, package and gating cargo feature. `cargo tree` of the
function's own build (no dev-dependencies, unlike the example's) gives the
features enabled on each package: an operation is the function's when its
package is built and its feature, if any, enabled. Every check fails on
empty facts and on modified copies of the module, as tests below show.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "infra" / "modules" / "uploadgate"
LAMBDA = "uploadgate-lambda"
SETTLE = "uploadgate-settle-lambda"
# What the settle function's SQS event source mapping needs of its role
# beyond the calls of the code (AWS, "Lambda execution role permissions"
# for Amazon SQS: ReceiveMessage, DeleteMessage, GetQueueAttributes).
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# `cargo lambda build --release --arm64` builds for this target.
LAMBDA_TARGET = "aarch64-unknown-linux-gnu"
# Clients aws-config links for its credential chain (SSO, web identity): no
# code of ours calls them; a function takes its credentials from its environment.
CREDENTIAL_CHAIN_SDKS = {"aws-sdk-sso", "aws-sdk-ssooidc", "aws-sdk-sts"}


# --- Facts from cargo ---

def cargo(*args: str) -> str:
    # CARGO_TARGET_DIR, if set, reaches cargo through the environment.
    proc = subprocess.run(["cargo", *args], cwd=REPO, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        pytest.fail(f"cargo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


@functools.cache
def manifest(package: str = LAMBDA) -> dict:
    return json.loads(cargo("run", "--locked", "--quiet", "-p", package, "--example", "manifest"))


@functools.cache
def lambda_build(package: str = LAMBDA) -> dict[str, frozenset[str]]:
    """Package name -> features enabled, in the function's own build."""
    out = cargo("tree", "--locked", "-p", package, "-e", "normal,build", "--target", LAMBDA_TARGET,
                "--prefix", "none", "--format", "{p}|{f}")
    build: dict[str, frozenset[str]] = {}
    for line in out.splitlines():
        package, _, features = line.removesuffix(" (*)").partition("|")
        if package:
            build[package.split()[0]] = frozenset(f for f in features.split(",") if f)
    return build


def check_manifest(m: dict, package: str = LAMBDA, services: frozenset[str] = frozenset({"dynamodb", "s3"})) -> None:
    """The manifest has something to compare: settings, and operations of
    every service the function uses."""
    assert m.get("package") == package, m.get("package")
    reads, serve_only = set(m.get("lambda_settings", [])), set(m.get("serve_only_settings", []))
    assert reads, "the manifest lists no setting the function reads"
    assert all(s.startswith("UPLOADGATE_") for s in reads | serve_only), sorted(reads | serve_only)
    assert not reads & serve_only, sorted(reads & serve_only)
    assert set(m.get("lambda_defaults", {})) <= reads, m.get("lambda_defaults")
    ops = m.get("operations", [])
    assert {o.get("service") for o in ops} >= services, f"operations of {sorted(services)} expected: {ops}"
    for o in ops:
        assert set(o) == {"package", "service", "operation", "iam_action", "feature"}, o
        assert o["iam_action"].startswith(o["service"] + ":") and "*" not in o["iam_action"], o


def function_operations(m: dict, build: dict[str, frozenset[str]], package: str = LAMBDA,
                        needed: frozenset[str] = frozenset({"dynamodb", "s3"})) -> list[dict]:
    """The declared operations the function's build compiles in."""
    check_manifest(m, package, needed)
    ops = [o for o in m["operations"]
           if o["package"] in build and (o["feature"] is None or o["feature"] in build[o["package"]])]
    services = {o["service"] for o in ops}
    assert needed <= services, f"the function's build performs no operation of {sorted(needed - services)}"
    # An SDK client in the build that no declared operation accounts for is
    # a call nobody declared.
    sdks = {p for p in build if p.startswith("aws-sdk-")} - CREDENTIAL_CHAIN_SDKS
    undeclared = sorted(s for s in sdks if s.removeprefix("aws-sdk-") not in services)
    assert not undeclared, f"the function links {undeclared} but no crate declares operations of them"
    return ops


def lambda_actions() -> set[str]:
    """The IAM actions of the operations the function can perform."""
    return {o["iam_action"] for o in function_operations(manifest(), lambda_build())}


SETTLE_SERVICES = frozenset({"dynamodb", "s3", "sqs"})


def settle_operations() -> list[dict]:
    return function_operations(manifest(SETTLE), lambda_build(SETTLE), SETTLE, SETTLE_SERVICES)


def settle_actions() -> set[str]:
    """The IAM actions the settle function's role needs: its code's, and
    its event source mapping's."""
    return {o["iam_action"] for o in settle_operations()} | EVENT_SOURCE_ACTIONS


# --- Terraform reading ---

def strip_hcl_comments(src: str) -> str:
    """`src` without `#`, `//` and `/* */` comments; strings kept whole."""
    return re.sub(r'("(?:\\.|[^"\\\n])*")|/\*.*?\*/|(?:#|//)[^\n]*', lambda m: m.group(1) or "", src, flags=re.S)


def _block(text: str, opening: int, pair: str = "{}") -> str:
    """The body of the `{` (or pair[0]) at text[opening], up to its matching
    `}` (braces in strings, `"${...}"`, are balanced too)."""
    depth = 0
    for i in range(opening, len(text)):
        depth += {pair[0]: 1, pair[1]: -1}.get(text[i], 0)
        if depth == 0:
            return text[opening + 1:i]
    raise AssertionError(f"unbalanced block at offset {opening}")


def module_environment(main_tf: str | None = None, prefix: str = "") -> dict[str, str]:
    """`settings = { KEY = expression }` in the module's locals: every
    setting, `null` where it does not apply, which `local.environment`
    leaves out of the function's environment. With prefix "settle_", the
    settle function's: `settle_settings`, `local.settle_environment`."""
    text = strip_hcl_comments(main_tf if main_tf is not None else (MODULE / "main.tf").read_text(encoding="utf-8"))
    m = re.search(rf"\b{prefix}settings\s*=\s*\{{", text)
    assert m, f"no `{prefix}settings = {{ ... }}` map in main.tf"
    env = dict(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*(.+?)\s*$", _block(text, m.end() - 1), flags=re.M))
    assert re.search(rf"\b{prefix}environment\s*=\s*\{{\s*for\s+(\w+)\s*,\s*(\w+)\s+in\s+local\.{prefix}settings\s*:"
                     r"\s*\1\s*=>\s*\2\s+if\s+\2\s*!=\s*null\s*\}", text), \
        f"local.{prefix}environment must be local.{prefix}settings without its null values"
    if prefix:
        function_tf, variables = "settle.tf", rf"variables\s*=\s*local\.{prefix}environment\s*\n"
    else:
        function_tf, variables = "lambda.tf", r"variables\s*=\s*merge\(\s*local\.environment\s*,\s*local\.secrets\s*\)"
    assert re.search(variables, strip_hcl_comments((MODULE / function_tf).read_text(encoding="utf-8"))), \
        f"the function in {function_tf} must take its environment from local.{prefix}environment"
    return env


def module_environment_keys() -> set[str]:
    return set(module_environment())


def iam_statements(iam_tf: str | None = None, name: str = "lambda", filename: str = "iam.tf") -> list[dict]:
    """Statements of an execution role's policy document (the gate's, or
    name "settle" in settle.tf): sid, actions and the resources
    expression, as text."""
    text = strip_hcl_comments(iam_tf if iam_tf is not None else (MODULE / filename).read_text(encoding="utf-8"))
    m = re.search(rf'data\s+"aws_iam_policy_document"\s+"{name}"\s*\{{', text)
    assert m, f'no data "aws_iam_policy_document" "{name}" in {filename}'
    doc = _block(text, m.end() - 1)
    statements = []
    for s in re.finditer(r"\bstatement\s*\{", doc):
        body = _block(doc, s.end() - 1)
        listed = {k: (_block(body, m.end() - 1, "[]") if (m := re.search(rf"\b{k}\s*=\s*\[", body)) else "")
                  for k in ("actions", "resources")}
        sid = re.search(r'\bsid\s*=\s*"([^"]+)"', body)
        statements.append({
            "sid": sid.group(1) if sid else None,
            "actions": re.findall(r'"([^"]+)"', listed["actions"]),
            "resources": [r for r in re.sub(r"\s+", "", listed["resources"]).split(",") if r],
        })
    return statements


def check_environment(env: set[str], m: dict, package: str = LAMBDA) -> None:
    check_manifest(m, package, SETTLE_SERVICES if package == SETTLE else frozenset({"dynamodb", "s3"}))
    reads, serve_only = set(m["lambda_settings"]), set(m["serve_only_settings"])
    assert not sorted(reads - env), f"read by the function but not set by the module: {sorted(reads - env)}"
    assert not env & serve_only, f"`uploadgate serve`-only settings set for the function: {sorted(serve_only & env)}"
    assert not env - reads, f"set by the module but not read by the function: {sorted(env - reads)}"


def check_iam(iam_tf: str | None, actions: set[str], name: str = "lambda", filename: str = "iam.tf") -> None:
    assert actions, f"no IAM action to compare {filename} with"
    granted = {a for s in iam_statements(iam_tf, name, filename) for a in s["actions"]
               if a.startswith(("dynamodb:", "s3:", "sqs:"))}
    assert not [a for a in granted if "*" in a], f"wildcard actions in iam.tf: {sorted(granted)}"
    assert not actions - granted, f"performed by the function but not granted: {sorted(actions - granted)}"
    assert not granted - actions, f"granted but never performed by the function: {sorted(granted - actions)}"


# --- The code and the module ---

def test_the_function_build_leaves_out_local_and_admin():
    build = lambda_build()
    assert {LAMBDA, "uploadgate-app", "uploadgate-http", "uploadgate-core"} <= set(build), sorted(build)
    # Every crate whose operations the manifest lists is in the function.
    assert {o["package"] for o in manifest()["operations"]} <= set(build), sorted(build)
    assert "uploadgate" not in build and "uploadgate-store-file" not in build, sorted(build)
    assert "admin" not in build["uploadgate-dynamodb"], build["uploadgate-dynamodb"]
    assert not {"local", "admin"} & build["uploadgate-app"], build["uploadgate-app"]
    assert "local" not in build["uploadgate-s3"], build["uploadgate-s3"]


def test_the_environment_is_every_setting_the_function_reads():
    check_environment(module_environment_keys(), manifest())


def test_fixed_settings_of_this_topology():
    env = module_environment()
    fixed = {"UPLOADGATE_STORE": '"dynamodb"', "UPLOADGATE_TARGET": '"s3"', "UPLOADGATE_CLIENT_IP": '"cloudfront"',
             "UPLOADGATE_LOG_FORMAT": '"json"', "UPLOADGATE_METRICS": '"emf"',
             "UPLOADGATE_TABLE": "aws_dynamodb_table.limits.name", "UPLOADGATE_BUCKET": "aws_s3_bucket.uploads.id"}
    assert {k: env.get(k) for k in fixed} == fixed
    # The function's own defaults are the module's too: fixed (log format,
    # metrics), or the default of the variable that sets them (identity).
    defaults = manifest()["lambda_defaults"]
    assert defaults and all(module_default(env.get(k)) == f'"{v}"' for k, v in defaults.items()), \
        {k: (v, env.get(k)) for k, v in defaults.items()}


def module_default(expression: str | None) -> str | None:
    """A settings value as deployed by default: a literal, or the default of
    the variable it is (`var.NAME`)."""
    m = re.fullmatch(r"var\.(\w+)", expression or "")
    if not m:
        return expression
    text = strip_hcl_comments((MODULE / "variables.tf").read_text(encoding="utf-8"))
    block = re.search(rf'^variable "{m.group(1)}" \{{(.*?)^\}}', text, flags=re.M | re.S)
    assert block, f"no variable {m.group(1)} in variables.tf"
    default = re.search(r"^  default\s*=\s*(.+?)\s*$", block.group(1), flags=re.M)
    return default.group(1) if default else None


def test_iam_grants_exactly_the_actions_of_the_function():
    actions = lambda_actions()
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "s3:PutObject"} <= actions, sorted(actions)
    check_iam(None, actions)


def test_iam_resources():
    """DynamoDB actions only on the table, S3 only under the upload prefix,
    and "*" only where a comment in iam.tf says AWS requires it."""
    text = (MODULE / "iam.tf").read_text(encoding="utf-8")
    seen_services = set()
    for s in iam_statements():
        services = {a.split(":", 1)[0] for a in s["actions"]}
        assert len(services) == 1, f"statement {s['sid']} mixes services: {s['actions']}"
        service = services.pop()
        seen_services.add(service)
        if service == "dynamodb":
            assert s["resources"] == ["aws_dynamodb_table.limits.arn"], s
        elif service == "s3":
            assert s["actions"] == ["s3:PutObject"] and s["resources"] == ["local.upload_objects_arn"], s
        elif s["resources"] == ['"*"']:
            block = text[text.index(f'sid = "{s["sid"]}"'):]
            block = block[:block.index('resources = ["*"]')]
            assert re.search(r"#.*requires", block), f'statement {s["sid"]} uses "*" without saying why'
        else:
            assert '"*"' not in s["resources"], s
    assert {"dynamodb", "s3", "logs"} <= seen_services
    main = strip_hcl_comments((MODULE / "main.tf").read_text(encoding="utf-8"))
    assert re.search(r'upload_objects_arn\s*=\s*"\$\{aws_s3_bucket\.uploads\.arn\}/\$\{var\.key_prefix\}\*"', main)


# --- The checks fail on what they must catch (modified copies, sample facts) ---

def test_iam_check_fails_on_a_missing_or_an_extra_grant():
    iam = (MODULE / "iam.tf").read_text(encoding="utf-8")
    actions = lambda_actions()
    lacking = iam.replace('"dynamodb:PutItem",', "", 1)
    assert lacking != iam
    with pytest.raises(AssertionError, match=r"not granted: \['dynamodb:PutItem'\]"):
        check_iam(lacking, actions)
    extra = iam.replace('"dynamodb:GetItem",', '"dynamodb:GetItem",\n      "dynamodb:DeleteItem",', 1)
    assert extra != iam
    with pytest.raises(AssertionError, match=r"never performed by the function: \['dynamodb:DeleteItem'\]"):
        check_iam(extra, actions)
    commented = iam.replace('"dynamodb:GetItem",', '# "dynamodb:GetItem",', 1)
    with pytest.raises(AssertionError, match="dynamodb:GetItem"):
        check_iam(commented, actions)
    with pytest.raises(AssertionError, match="no IAM action"):
        check_iam(iam, set())


def test_environment_check_fails_on_a_missing_an_extra_or_a_serve_only_setting():
    env, m = module_environment_keys(), manifest()
    for modified, message in [(env - {"UPLOADGATE_TABLE"}, "not set by the module"),
                              (env | {"UPLOADGATE_LISTEN"}, r"serve`-only settings set .*UPLOADGATE_LISTEN"),
                              (env | {"UPLOADGATE_TYPO"}, "not read by the function")]:
        with pytest.raises(AssertionError, match=message):
            check_environment(modified, m)
    # A copy of main.tf without one line, through the reader.
    main = (MODULE / "main.tf").read_text(encoding="utf-8")
    dropped = re.sub(r"^\s*UPLOADGATE_URL_TTL\s*=.*\n", "", main, flags=re.M)
    assert dropped != main
    with pytest.raises(AssertionError, match="UPLOADGATE_URL_TTL"):
        check_environment(set(module_environment(dropped)), m)
    # Null settings kept in the environment would reach the function as
    # empty values.
    unfiltered = re.sub(r"environment\s*=\s*\{\s*for .*\}", "environment = local.settings", main)
    assert unfiltered != main
    with pytest.raises(AssertionError, match="without its null values"):
        module_environment(unfiltered)


def test_nothing_to_compare_is_a_failure():
    for empty in [{}, {"package": LAMBDA},
                  {**manifest(), "lambda_settings": []},
                  {**manifest(), "operations": []},
                  {**manifest(), "operations": [o for o in manifest()["operations"] if o["service"] != "s3"]}]:
        with pytest.raises(AssertionError):
            check_manifest(empty)


def test_an_operation_is_the_function_s_only_where_its_build_compiles_it():
    m, build = manifest(), lambda_build()
    names = lambda b: {o["operation"] for o in function_operations(m, b)}
    assert "DeleteItem" not in names(build) and {"GetItem", "PutItem", "PutObject"} <= names(build)
    # Were `admin` unified into the function, deletes and table administration would be its own.
    admin = {**build, "uploadgate-dynamodb": build["uploadgate-dynamodb"] | {"admin"}}
    assert {"DeleteItem", "CreateTable"} <= names(admin)
    # Without the store crate there is no DynamoDB operation, which fails.
    with pytest.raises(AssertionError, match="no operation of"):
        function_operations(m, {k: v for k, v in build.items() if k != "uploadgate-dynamodb"})
    # An SDK client nobody declares operations for.
    with pytest.raises(AssertionError, match="aws-sdk-sqs"):
        function_operations(m, {**build, "aws-sdk-sqs": frozenset()})



# --- The settle function (charge = "upload"), held to its own manifest ---

def test_the_settle_build_links_the_ledger_but_not_admin_or_local():
    build = lambda_build(SETTLE)
    assert {SETTLE, "uploadgate-settle", "uploadgate-app", "uploadgate-dynamodb"} <= set(build), sorted(build)
    assert build["uploadgate-dynamodb"] >= {"ledger"} and "admin" not in build["uploadgate-dynamodb"], \
        build["uploadgate-dynamodb"]
    assert not {"local", "admin"} & build["uploadgate-app"], build["uploadgate-app"]
    # The gate's build links none of it: its role gets no SQS, ledger or settle call.
    gate = lambda_build()
    assert "uploadgate-settle" not in gate and "ledger" not in gate["uploadgate-dynamodb"], sorted(gate)
    assert "sqs" not in {o["service"] for o in function_operations(manifest(), gate)}


def test_the_settle_environment_is_every_setting_it_reads():
    env = module_environment(prefix="settle_")
    check_environment(set(env), manifest(SETTLE), SETTLE)
    # Where the gate reads a setting too, the settle function gets the
    # gate's value (it settles against the gate's reservations), and its
    # own defaults are what the module deploys.
    gate = module_environment()
    shared = {k for k in env if k in gate} - {"UPLOADGATE_CHARGE", "UPLOADGATE_SETTLE_GRACE"}
    assert shared and all(env[k] == f"local.settings.{k}" for k in shared), {k: env[k] for k in shared}
    deployed = {k: module_default(gate[k]) if env[k] == f"local.settings.{k}" else env[k]
                for k in manifest(SETTLE)["lambda_defaults"]}
    assert deployed == {k: f'"{v}"' for k, v in manifest(SETTLE)["lambda_defaults"].items()}, deployed
    # ...and the gate reads its upload-mode settings only in upload mode.
    for k in ("UPLOADGATE_CHARGE", "UPLOADGATE_SETTLE_GRACE"):
        assert gate[k].startswith("local.upload ?") and gate[k].endswith(": null"), (k, gate[k])


def test_the_settle_role_grants_exactly_its_actions():
    actions = settle_actions()
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "s3:GetObject", "sqs:SendMessage"} <= actions, sorted(actions)
    check_iam(None, actions, "settle", "settle.tf")


def test_the_settle_role_grants_each_action_on_its_resource_only():
    """Store calls on the limits table, ledger calls on the usage table (by
    the feature that compiles them), S3 under the upload prefix, the
    hand-off on the accepted queue, consumption on the event queue."""
    ops = settle_operations()
    store = {o["iam_action"] for o in ops if o["service"] == "dynamodb" and o["feature"] is None}
    ledger = {o["iam_action"] for o in ops if o["service"] == "dynamodb" and o["feature"] == "ledger"}
    handoff = {"sqs:SendMessage"}
    expected = {
        "aws_dynamodb_table.limits.arn": store,
        "aws_dynamodb_table.usage[0].arn": ledger,
        "local.upload_objects_arn": {o["iam_action"] for o in ops if o["service"] == "s3"},
        "aws_sqs_queue.accepted[0].arn": handoff,
        "aws_sqs_queue.events[0].arn": {o["iam_action"] for o in ops if o["service"] == "sqs"} - handoff
        | EVENT_SOURCE_ACTIONS,
        '"${aws_cloudwatch_log_group.settle[0].arn}:*"': {"logs:CreateLogStream", "logs:PutLogEvents"},
    }
    granted: dict[str, set[str]] = {}
    for s in iam_statements(None, "settle", "settle.tf"):
        if s["resources"] in (['"*"'], ["var.kms_key_arn"]):
            assert {a.split(":")[0] for a in s["actions"]} <= {"xray", "kms"}, s
            continue
        assert len(s["resources"]) == 1, s
        granted.setdefault(s["resources"][0], set()).update(s["actions"])
    assert granted == expected


def test_the_settle_checks_fail_on_modified_copies():
    settle = (MODULE / "settle.tf").read_text(encoding="utf-8")
    actions = settle_actions()
    lacking = settle.replace('"sqs:GetQueueAttributes",', "", 1)
    assert lacking != settle
    with pytest.raises(AssertionError, match=r"not granted: \['sqs:GetQueueAttributes'\]"):
        check_iam(lacking, actions, "settle", "settle.tf")
    extra = settle.replace('"s3:PutObjectTagging",', '"s3:PutObjectTagging",\n      "s3:DeleteObject",', 1)
    with pytest.raises(AssertionError, match=r"never performed by the function: \['s3:DeleteObject'\]"):
        check_iam(extra, actions, "settle", "settle.tf")
    # The settle role is no gate role: it may not presign uploads.
    with pytest.raises(AssertionError, match=r"not granted: \['s3:PutObject'\]"):
        check_iam(None, lambda_actions(), "settle", "settle.tf")
    main = (MODULE / "main.tf").read_text(encoding="utf-8")
    m = manifest(SETTLE)
    dropped = re.sub(r"^\s*UPLOADGATE_ACCEPTED_QUEUE_URL\s*=.*\n", "", main, flags=re.M)
    with pytest.raises(AssertionError, match="UPLOADGATE_ACCEPTED_QUEUE_URL"):
        check_environment(set(module_environment(dropped, "settle_")), m, SETTLE)
    cors = main.replace("UPLOADGATE_METRICS            = local.settings.UPLOADGATE_METRICS",
                        "UPLOADGATE_METRICS = local.settings.UPLOADGATE_METRICS\n    UPLOADGATE_CORS_ORIGINS = \"*\"", 1)
    assert cors != main
    with pytest.raises(AssertionError, match="UPLOADGATE_CORS_ORIGINS"):
        check_environment(set(module_environment(cors, "settle_")), m, SETTLE)
    # Without its SQS operations the settle manifest has nothing to hold the queues to.
    with pytest.raises(AssertionError):
        check_manifest({**m, "operations": [o for o in m["operations"] if o["service"] != "sqs"]}, SETTLE, SETTLE_SERVICES)
