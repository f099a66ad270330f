"""The Rust code and the Terraform module must agree.

1. Every UPLOADGATE_* setting the code reads (a string literal in
   crates/**/*.rs, outside tests) is set in the function's environment in
   infra/modules/uploadgate/main.tf, and the module sets nothing the code
   does not read.
2. Every DynamoDB and S3 operation the code performs is granted in
   infra/modules/uploadgate/iam.tf, and nothing more is granted.

Both checks are static: they read source text. They fail, rather than pass,
when they find nothing to compare, so a moved or renamed crate cannot make
them vacuous.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRATES = REPO / "crates"
MODULE = REPO / "infra" / "modules" / "uploadgate"

# Settings only the local server reads (it listens on a socket, keeps its
# data on disk and may read a config file); the Lambda has none of these, so
# the module must not set them.
LOCAL_ONLY_SETTINGS = {
    "UPLOADGATE_DATA_DIR",    # embedded file store directory
    "UPLOADGATE_LISTEN",      # HTTP listen address of the local server
    "UPLOADGATE_S3_LISTEN",   # listen address of the local S3-compatible target
    "UPLOADGATE_CONFIG",      # path of the local TOML config file
}

# aws-sdk-dynamodb fluent operations (snake_case, as called on the Client)
# -> the IAM action that authorises them.
DYNAMODB_OPERATIONS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "delete_item": "dynamodb:DeleteItem",
    "update_item": "dynamodb:UpdateItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "describe_table": "dynamodb:DescribeTable",
    "describe_time_to_live": "dynamodb:DescribeTimeToLive",
    "update_time_to_live": "dynamodb:UpdateTimeToLive",
    "create_table": "dynamodb:CreateTable",
    "delete_table": "dynamodb:DeleteTable",
    "list_tables": "dynamodb:ListTables",
    "execute_statement": "dynamodb:PartiQLSelect",
    # Transactions have no action of their own: each item is authorised by
    # its own kind, see TRANSACT_ITEM_KINDS.
    "transact_write_items": None,
    "transact_get_items": None,
}

# Inside TransactWriteItems / TransactGetItems each element is authorised as
# the matching single-item action.
TRANSACT_ITEM_KINDS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}

# aws-sdk-s3 fluent operations -> IAM action. A presigned request is
# authorised at use time by the same action as the plain call.
S3_OPERATIONS = {
    "put_object": "s3:PutObject",
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "delete_object": "s3:DeleteObject",
    "delete_objects": "s3:DeleteObject",
    "copy_object": "s3:PutObject",
    "create_multipart_upload": "s3:PutObject",
    "upload_part": "s3:PutObject",
    "complete_multipart_upload": "s3:PutObject",
    "abort_multipart_upload": "s3:AbortMultipartUpload",
    "list_objects": "s3:ListBucket",
    "list_objects_v2": "s3:ListBucket",
    "list_multipart_uploads": "s3:ListBucketMultipartUploads",
    "head_bucket": "s3:ListBucket",
    "get_object_tagging": "s3:GetObjectTagging",
    "put_object_tagging": "s3:PutObjectTagging",
    "create_bucket": "s3:CreateBucket",
    "delete_bucket": "s3:DeleteBucket",
    "get_bucket_location": "s3:GetBucketLocation",
}

SDK_CRATES = {
    "aws-sdk-dynamodb": DYNAMODB_OPERATIONS,
    "aws-sdk-s3": S3_OPERATIONS,
}


# --------------------------------------------------------------------------
# Rust source reading
# --------------------------------------------------------------------------

def strip_rust_comments(src: str) -> str:
    """Drop // and /* */ comments, keeping string literals intact."""
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = src.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(src[i:end])
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:i + 4]):
            # A char literal such as '"' must not open a string.
            m = re.match(r"'(\\.|[^\\'])'", src[i:])
            out.append(m.group(0))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_modules(src: str) -> str:
    """Remove `#[cfg(test)] mod name { ... }` blocks (comments already gone)."""
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(src)
        if not m:
            return src
        depth, i = 1, m.end()
        while i < len(src) and depth:
            if src[i] == '"':
                j = i + 1
                while j < len(src) and src[j] != '"':
                    j += 2 if src[j] == "\\" else 1
                i = j + 1
                continue
            depth += {"{": 1, "}": -1}.get(src[i], 0)
            i += 1
        src = src[:m.start()] + src[i:]


def production_sources(crate_dir: Path) -> dict[Path, str]:
    """Non-test Rust code of a crate: src/ minus cfg(test) modules.

    tests/, benches/ and examples/ are not deployed, so they are not read.
    """
    sources = {}
    test_files: set[Path] = set()
    for path in sorted((crate_dir / "src").rglob("*.rs")):
        text = strip_rust_comments(path.read_text(encoding="utf-8"))
        # `#[cfg(test)] mod name;` puts the tests in a file of their own.
        base = path.parent if path.name in ("lib.rs", "main.rs", "mod.rs") else path.with_suffix("")
        for name in re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            test_files |= {base / f"{name}.rs", base / name / "mod.rs"}
        sources[path] = strip_test_modules(text)
    for path in test_files:
        sources.pop(path, None)
    # Files under an excluded module directory are tests too.
    return {p: t for p, t in sources.items()
            if not any(f.name == "mod.rs" and f.parent in p.parents for f in test_files)}


def crate_dirs() -> list[Path]:
    return sorted(p.parent for p in CRATES.glob("*/Cargo.toml"))


def uploadgate_settings(sources: dict[Path, str]) -> set[str]:
    found = set()
    for text in sources.values():
        found |= set(re.findall(r'"(UPLOADGATE_[A-Z0-9_]+)"', text))
    return found


def runtime_dependencies(crate_dir: Path) -> set[str]:
    """Names in [dependencies] (and target-specific ones), not dev-dependencies."""
    manifest = tomllib.loads((crate_dir / "Cargo.toml").read_text(encoding="utf-8"))
    deps = set(manifest.get("dependencies", {}))
    for target in manifest.get("target", {}).values():
        deps |= set(target.get("dependencies", {}))
    return deps


def sdk_actions(sources: dict[Path, str], operations: dict[str, str | None]) -> dict[str, set[str]]:
    """IAM actions needed by the SDK calls in `sources`, with where they come from."""
    needed: dict[str, set[str]] = {}

    def need(action: str, why: str) -> None:
        needed.setdefault(action, set()).add(why)

    for path, text in sources.items():
        rel = path.relative_to(REPO)
        # Fluent operations are called without arguments: client.put_item()
        for op in re.findall(r"\.([a-z0-9_]+)\(\s*\)", text):
            if op not in operations:
                continue
            action = operations[op]
            if action is not None:
                need(action, f"{rel}: .{op}()")
                continue
            kinds = set(re.findall(r"\b(Put|Update|Delete|ConditionCheck|Get)::builder\(\)", text))
            if not kinds:
                pytest.fail(f"{rel} calls .{op}() but no Put/Update/Delete/ConditionCheck/Get::builder() "
                            "was found to tell which item actions it needs")
            for kind in kinds:
                need(TRANSACT_ITEM_KINDS[kind], f"{rel}: .{op}() with {kind}")
        # The fast presign path signs a PUT with aws-sigv4 directly instead of
        # through the SDK: at use time that is still s3:PutObject.
        if operations is S3_OPERATIONS and "aws_sigv4" in text and re.search(r'"PUT"|Method::PUT', text):
            need("s3:PutObject", f"{rel}: PUT signed with aws_sigv4")
    return needed


# --------------------------------------------------------------------------
# Terraform reading
# --------------------------------------------------------------------------

def strip_hcl_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    lines = []
    for line in src.splitlines():
        out, in_str, i = [], False, 0
        while i < len(line):
            c = line[i]
            if c == '"' and (i == 0 or line[i - 1] != "\\"):
                in_str = not in_str
            if not in_str and (c == "#" or line.startswith("//", i)):
                break
            out.append(c)
            i += 1
        lines.append("".join(out))
    return "\n".join(lines)


def module_environment_keys() -> set[str]:
    """Keys of `environment = { ... }` in the module's locals."""
    text = strip_hcl_comments((MODULE / "main.tf").read_text(encoding="utf-8"))
    m = re.search(r"\benvironment\s*=\s*\{(.*?)\n\s*\}", text, flags=re.S)
    assert m, "no `environment = { ... }` map in infra/modules/uploadgate/main.tf"
    keys = set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*=", m.group(1), flags=re.M))
    # The map must be what the function gets.
    lambda_tf = strip_hcl_comments((MODULE / "lambda.tf").read_text(encoding="utf-8"))
    assert re.search(r"variables\s*=\s*local\.environment\b", lambda_tf), \
        "aws_lambda_function must take its environment from local.environment"
    return keys


def granted_actions() -> set[str]:
    text = strip_hcl_comments((MODULE / "iam.tf").read_text(encoding="utf-8"))
    return set(re.findall(r'"((?:dynamodb|s3):[A-Za-z*]+)"', text))


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_crates_exist():
    assert crate_dirs(), f"no crates under {CRATES}"


def test_every_setting_the_code_reads_is_wired():
    found = set()
    for crate in crate_dirs():
        found |= uploadgate_settings(production_sources(crate))
    assert found, ("no \"UPLOADGATE_*\" string literal in crates/*/src: the settings moved or are built "
                   "dynamically; update this test rather than let it pass on nothing")
    lambda_settings = found - LOCAL_ONLY_SETTINGS
    wired = module_environment_keys()
    missing = sorted(lambda_settings - wired)
    assert not missing, f"read by the code but not set by the module: {missing}"
    stale = sorted(k for k in wired if k.startswith("UPLOADGATE_") and k not in lambda_settings)
    assert not stale, f"set by the module but never read by the code: {stale}"
    local_leak = sorted(wired & LOCAL_ONLY_SETTINGS)
    assert not local_leak, f"local-server-only settings in the Lambda environment: {local_leak}"


def test_iam_grants_exactly_the_sdk_calls():
    needed: dict[str, set[str]] = {}
    sdk_users = []
    for crate in crate_dirs():
        deps = runtime_dependencies(crate)
        sources = None
        for sdk, operations in SDK_CRATES.items():
            if sdk not in deps:
                continue
            sdk_users.append(f"{crate.name} ({sdk})")
            sources = sources or production_sources(crate)
            for action, why in sdk_actions(sources, operations).items():
                needed.setdefault(action, set()).update(why)
    assert needed, ("found no DynamoDB or S3 call in the crates that depend on aws-sdk-dynamodb / "
                    f"aws-sdk-s3 (those crates: {sdk_users or 'none'})")

    granted = granted_actions()
    assert not [a for a in granted if "*" in a], f"wildcard actions in iam.tf: {sorted(granted)}"
    missing = sorted(set(needed) - granted)
    assert not missing, "performed by the code but not granted: " + "; ".join(
        f"{a} ({', '.join(sorted(needed[a]))})" for a in missing)
    extra = sorted(granted - set(needed))
    assert not extra, f"granted in iam.tf but never performed by the code: {extra}"


# --------------------------------------------------------------------------
# The readers themselves, on sample sources: they must find what is there
# and ignore comments and tests.
# --------------------------------------------------------------------------

SAMPLE_STORE = r'''
//! Store. Mentions "UPLOADGATE_IN_DOC" and client.scan() in a comment.
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
const TABLE: &str = "UPLOADGATE_TABLE";
/* block comment: "UPLOADGATE_IN_BLOCK" .update_item() */
async fn cas(c: &Client) {
    let q = '"'; // a char literal that looks like a string start
    c.get_item().table_name(t).send().await;
    c.transact_write_items()
        .transact_items(TransactWriteItem::builder().put(Put::builder().build()?).build())
        .send().await;
    let s = r#"raw "UPLOADGATE_RAW" string"#;
}
#[cfg(test)]
mod tests {
    fn helper() { let _ = "UPLOADGATE_ONLY_IN_TESTS"; client.delete_table(); }
}
'''

SAMPLE_PRESIGN = r'''
use aws_sigv4::http_request::SignableRequest;
fn presign() { SignableRequest::new("PUT", url, headers, body); }
'''


def test_readers_on_samples(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "lib.rs").write_text(SAMPLE_STORE)
    sources = production_sources(tmp_path)
    assert uploadgate_settings(sources) == {"UPLOADGATE_TABLE", "UPLOADGATE_RAW"}

    rel = {Path(REPO / "crates" / "x" / "src" / "lib.rs"): text for text in sources.values()}
    actions = sdk_actions(rel, DYNAMODB_OPERATIONS)
    assert set(actions) == {"dynamodb:GetItem", "dynamodb:PutItem"}

    presign = {REPO / "crates" / "x" / "src" / "p.rs": strip_rust_comments(SAMPLE_PRESIGN)}
    assert set(sdk_actions(presign, S3_OPERATIONS)) == {"s3:PutObject"}

    # Out-of-line test modules (`#[cfg(test)] mod tests;`) are not production code.
    (src / "lib.rs").write_text('mod store;\n#[cfg(test)]\nmod tests;\nconst A: &str = "UPLOADGATE_A";\n')
    (src / "tests.rs").write_text('const B: &str = "UPLOADGATE_IN_TEST_FILE";\n')
    (src / "store.rs").write_text('#[cfg(test)] mod fixtures;\nconst C: &str = "UPLOADGATE_C";\n')
    (src / "store").mkdir()
    (src / "store" / "fixtures.rs").write_text('const D: &str = "UPLOADGATE_IN_FIXTURES";\n')
    assert uploadgate_settings(production_sources(tmp_path)) == {"UPLOADGATE_A", "UPLOADGATE_C"}


def test_hcl_readers_on_module():
    # The module grants and wires something; the readers must see it.
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "s3:PutObject"} <= granted_actions()
    assert {"UPLOADGATE_STORE", "UPLOADGATE_TABLE", "UPLOADGATE_BUCKET"} <= module_environment_keys()
