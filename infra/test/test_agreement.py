"""The Rust code and the Terraform module must agree.

"The code the Lambda runs" is the code compiled into the function's zip:

* the `uploadgate-lambda` binary target and the library of its own crate;
* the library of every workspace crate in its [dependencies] closure
  (path and `workspace = true` dependencies that resolve to a crate of this
  repository, followed transitively; dev-dependencies are not built into
  the binary);
* in each of those crates only the modules reachable from the target's
  root file through `mod` declarations, minus every item whose `#[cfg(...)]`
  is false for that build: `cfg(test)`, and `cfg(feature = "...")` for a
  feature the Lambda's build does not enable. Features are unified the way
  Cargo does when it builds only this package (`cargo lambda build -p
  uploadgate-lambda`): a crate's features are the union of what the crates
  in the closure ask of it, expanded through its [features] table, plus
  `default` unless `default-features = false`. So `uploadgate-dynamodb`'s
  `admin` module (table creation, enabled only by the `uploadgate` CLI) is
  not Lambda code, unless the Lambda crate enables that feature.

Checks:

1. Every UPLOADGATE_* setting that code reads (a string literal) is set in
   the function's environment in infra/modules/uploadgate/main.tf, the
   module sets nothing that code does not read, and never a setting that
   only the local server uses (LOCAL_ONLY_SETTINGS).
2. Every DynamoDB and S3 operation that code performs is granted in
   infra/modules/uploadgate/iam.tf, and nothing more.

Both checks are static: they read source text. They fail, rather than pass,
when they find nothing to compare, and on Rust they cannot read (a `#[path]`
module, a `mod` whose file is missing), so a moved or renamed crate cannot
make them vacuous.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "infra" / "modules" / "uploadgate"

# The package `cargo lambda build -p uploadgate-lambda` builds and the binary
# whose zip (target/lambda/uploadgate-lambda/bootstrap.zip) the module deploys.
LAMBDA_PACKAGE = "uploadgate-lambda"
LAMBDA_BINARY = "uploadgate-lambda"

# Settings only the local server reads (it listens on sockets and keeps its
# data on disk); the Lambda has none of these, so the module must not set
# them. The test also checks that the code still reads each of them, so this
# list cannot go stale.
LOCAL_ONLY_SETTINGS = {
    "UPLOADGATE_DATA_DIR",    # file store directory and local bucket
    "UPLOADGATE_LISTEN",      # HTTP listen address of `uploadgate serve`
    "UPLOADGATE_S3_LISTEN",   # listen address of the local S3-compatible bucket
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
    "describe_continuous_backups": "dynamodb:DescribeContinuousBackups",
    "create_table": "dynamodb:CreateTable",
    "update_table": "dynamodb:UpdateTable",
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

# SDK crate -> (its Rust path, its operations). A crate is scanned for a
# service when it depends on the SDK crate or names its Rust path (a client
# re-exported by another crate).
SDK_CRATES = {
    "aws-sdk-dynamodb": ("aws_sdk_dynamodb", DYNAMODB_OPERATIONS),
    "aws-sdk-s3": ("aws_sdk_s3", S3_OPERATIONS),
}

# cfg values of the Lambda build: a release build (`cargo lambda build
# --release --arm64`) for aarch64 Linux. Anything else is unknown, and code
# under an unknown cfg is kept (it may be compiled in).
CFG_FLAGS = {
    "test": False, "debug_assertions": False, "doc": False, "doctest": False,
    "miri": False, "docsrs": False, "unix": True, "windows": False,
}
CFG_VALUES = {
    "target_os": "linux", "target_family": "unix", "target_arch": "aarch64",
    "target_pointer_width": "64", "target_endian": "little", "target_env": "gnu",
    "target_vendor": "unknown",
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
        elif (m := _raw_string_at(src, i)) is not None:
            out.append(src[i:m])
            i = m
        elif c == '"':
            j = _string_end(src, i)
            out.append(src[i:j])
            i = j
        elif c == "'" and (m := re.match(r"'(\\.|[^\\'])'", src[i:i + 4])):
            # A char literal such as '"' must not open a string.
            out.append(m.group(0))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _raw_string_at(src: str, i: int) -> int | None:
    """End (exclusive) of a raw string literal r"..", r#".."#, br".." at i."""
    if i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_"):
        return None
    m = re.match(r'b?r(#*)"', src[i:i + 260])
    if not m:
        return None
    end = src.find('"' + m.group(1), i + len(m.group(0)))
    return len(src) if end < 0 else end + 1 + len(m.group(1))


def _string_end(src: str, i: int) -> int:
    """End (exclusive) of the ordinary string literal opening at src[i] == '"'."""
    j = i + 1
    while j < len(src) and src[j] != '"':
        j += 2 if src[j] == "\\" else 1
    return j + 1


def blank_literals(src: str) -> str:
    """`src` (comments already gone) with the contents of string and char
    literals replaced by spaces: same length, same positions, so structure
    (brackets, `;`, `mod`) can be read without literals getting in the way."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        if (m := _raw_string_at(src, i)) is not None:
            opening = re.match(r'b?r(#*)"', src[i:])
            start = i + len(opening.group(0))
            close = m - 1 - len(opening.group(1))  # the closing quote
            for k in range(start, max(start, close)):
                out[k] = " "
            i = m
        elif src[i] == '"':
            j = _string_end(src, i)
            for k in range(i + 1, j - 1):
                out[k] = " "
            i = j
        elif src[i] == "'" and (m2 := re.match(r"'(\\.|[^\\'])'", src[i:i + 4])):
            for k in range(i + 1, i + len(m2.group(0)) - 1):
                out[k] = " "
            i += len(m2.group(0))
        else:
            i += 1
    return "".join(out)


def _matching(code: str, i: int) -> int:
    """Index of the bracket closing the one at code[i] (literals blanked)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[code[i]]]
    j = i + 1
    while j < len(code) and stack:
        c = code[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if c != stack[-1]:
                raise ValueError(f"unbalanced {c!r} at {j}")
            stack.pop()
        j += 1
    if stack:
        raise ValueError(f"unclosed {code[i]!r} at {i}")
    return j - 1


# -- cfg predicates ---------------------------------------------------------

def _cfg_tokens(pred: str) -> list[str]:
    return re.findall(r'"(?:\\.|[^"\\])*"|[A-Za-z_][A-Za-z0-9_]*|[(),=]', pred)


def eval_cfg(pred: str, features: set[str]) -> bool | None:
    """Value of a cfg predicate in the Lambda build: True, False, or None
    when it depends on something this reader does not know."""
    tokens = _cfg_tokens(pred)
    pos = 0

    def parse() -> bool | None:
        nonlocal pos
        name = tokens[pos]
        pos += 1
        if name in ("all", "any", "not") and pos < len(tokens) and tokens[pos] == "(":
            pos += 1
            args: list[bool | None] = []
            while tokens[pos] != ")":
                args.append(parse())
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            if name == "not":
                return None if args[0] is None else not args[0]
            if name == "all":
                return False if False in args else (None if None in args else True)
            return True if True in args else (None if None in args else False)
        if pos < len(tokens) and tokens[pos] == "=":
            value = tokens[pos + 1].strip('"')
            pos += 2
            if name == "feature":
                return value in features
            if name in CFG_VALUES:
                return CFG_VALUES[name] == value
            return None
        return CFG_FLAGS.get(name)

    result = parse()
    if pos != len(tokens):
        raise ValueError(f"cannot read cfg({pred})")
    return result


_ITEM_KEYWORDS = re.compile(
    r"(?:pub(?:\s*\([^)]*\))?\s+)?(?:(?:async|unsafe|const|extern(?:\s+\"\w*\")?|default)\s+)*"
    r"(?:fn|impl|struct|enum|union|trait|mod|macro_rules!)\b")
_SEMICOLON_ITEMS = re.compile(
    r"(?:pub(?:\s*\([^)]*\))?\s+)?(?:use|const|static|type|let|extern\s+crate)\b")


def _item_end(code: str, p: int) -> int:
    """End (exclusive) of the item, field, statement or arm starting at p."""
    is_item = bool(_ITEM_KEYWORDS.match(code, p))
    to_semicolon = not is_item and bool(_SEMICOLON_ITEMS.match(code, p))
    angle = 0  # generic arguments of a field's type: `a: Map<K, V>,`
    i = p
    while i < len(code):
        c = code[i]
        if c == "{" and not to_semicolon:
            return _matching(code, i) + 1
        if c in "([{":
            i = _matching(code, i) + 1
            continue
        if c in ")]}":
            return i  # the end of the enclosing block: the item ends before it
        if c == "<":
            angle += 1
        elif c == ">" and code[i - 1] not in "-=":
            angle -= 1
        elif c == ";" or (c == "," and angle <= 0 and not is_item and not to_semicolon):
            return i + 1
        i += 1
    return len(code)


def strip_cfg_items(text: str, features: set[str]) -> tuple[str, bool]:
    """Blank every item under a `#[cfg(...)]` that is false in the Lambda
    build. Returns the text and whether the file itself is compiled (an
    inner `#![cfg(...)]` can switch a whole file off)."""
    code = blank_literals(text)
    for m in re.finditer(r"#!\[\s*cfg\s*\(", code):
        pred = text[m.end():_matching(code, m.end() - 1)]
        if eval_cfg(pred, features) is False:
            return "", False
    out = list(text)
    pos = 0
    for m in re.finditer(r"#\[\s*cfg\s*\(", code):
        if m.start() < pos:
            continue  # inside an item already removed
        close = _matching(code, m.end() - 1)
        pred = text[m.end():close]
        if eval_cfg(pred, features) is not False:
            continue
        # Skip to the attribute's `]`, then any further attributes.
        p = code.index("]", close) + 1
        while True:
            while p < len(code) and code[p].isspace():
                p += 1
            if code.startswith("#[", p):
                p = _matching(code, p + 1) + 1
            else:
                break
        end = _item_end(code, p)
        for k in range(m.start(), end):
            if out[k] != "\n":
                out[k] = " "
        pos = end
    return "".join(out), True


# -- modules ------------------------------------------------------------------

def _module_files(path: Path, code: str) -> list[tuple[str, list[Path]]]:
    """`mod name;` declarations of a file (cfg already applied), each with the
    files that may hold it, following inline `mod a { mod b; }` nesting."""
    base = path.parent if path.name in ("lib.rs", "main.rs", "mod.rs") else path.with_suffix("")
    found = []
    inline: list[tuple[str, int]] = []  # (name, index of its closing brace)
    for m in re.finditer(r"(#\[\s*path\b)|\bmod\s+(r#)?(\w+)\s*([;{])", code):
        while inline and m.start() > inline[-1][1]:
            inline.pop()
        if m.group(1):
            pytest.fail(f"{path}: #[path] on a module is not supported by this reader; extend it")
        name = m.group(3)
        if m.group(4) == "{":
            inline.append((name, _matching(code, m.end() - 1)))
            continue
        d = base.joinpath(*[n for n, _ in inline])
        found.append((name, [d / f"{name}.rs", d / name / "mod.rs"]))
    return found


def target_sources(root_file: Path, features: set[str]) -> dict[Path, str]:
    """Production code of one target: the files reachable from its root
    through `mod` declarations, comments and false-cfg items removed."""
    sources: dict[Path, str] = {}
    todo = [root_file]
    while todo:
        path = todo.pop()
        if path in sources:
            continue
        text, compiled = strip_cfg_items(strip_rust_comments(path.read_text(encoding="utf-8")), features)
        if not compiled:
            continue
        sources[path] = text
        for name, candidates in _module_files(path, blank_literals(text)):
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is None:
                pytest.fail(f"{path}: `mod {name};` but none of {[str(c) for c in candidates]} exists")
            todo.append(hit)
    return sources


# --------------------------------------------------------------------------
# Cargo manifests: the Lambda's crate closure and its features
# --------------------------------------------------------------------------

def _load_toml(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


@dataclass
class Dependency:
    name: str                 # its key in [dependencies]
    package: str              # the package it resolves to (`package = ...`, else the key)
    path: Path | None         # local crate directory, or None (a registry crate)
    features: set[str]
    default_features: bool
    optional: bool


@dataclass
class CrateBuild:
    name: str
    dir: Path
    manifest: dict
    features: set[str] = field(default_factory=set)


def _dependencies(crate_dir: Path, manifest: dict, workspace: dict) -> dict[str, Dependency]:
    """Runtime [dependencies] (and target-specific ones), not dev-dependencies."""
    tables = [manifest.get("dependencies", {})]
    tables += [t.get("dependencies", {}) for t in manifest.get("target", {}).values()]
    ws_deps = workspace.get("workspace", {}).get("dependencies", {})
    ws_root = workspace.get("__dir__", crate_dir)
    deps = {}
    for table in tables:
        for key, entry in table.items():
            entry = {"version": entry} if isinstance(entry, str) else dict(entry)
            base = crate_dir
            features = set(entry.get("features", []))
            default = entry.get("default-features", entry.get("default_features", True))
            if entry.get("workspace"):
                ws = ws_deps.get(key)
                if ws is None:
                    pytest.fail(f"{crate_dir}/Cargo.toml: {key}.workspace = true but the workspace has no {key}")
                ws = {"version": ws} if isinstance(ws, str) else dict(ws)
                features |= set(ws.get("features", []))
                default = ws.get("default-features", ws.get("default_features", True))
                entry = {**ws, **{k: v for k, v in entry.items() if k != "workspace"}}
                base = ws_root
            path = (base / entry["path"]).resolve() if "path" in entry else None
            deps[key] = Dependency(key, entry.get("package", key), path, features, default,
                                   bool(entry.get("optional", False)))
    return deps


def _expand_features(requested: set[str], table: dict, deps: dict[str, Dependency]
                     ) -> tuple[set[str], set[str], dict[str, set[str]]]:
    """Cargo's feature expansion for one crate: (its enabled features, the
    optional dependencies they switch on, features they ask of dependencies)."""
    enabled: set[str] = set()
    optional_on: set[str] = set()
    dep_features: dict[str, set[str]] = {}
    todo = [f for f in requested if f != "default" or "default" in table]
    weak: list[tuple[str, str]] = []
    while todo:
        f = todo.pop()
        if f in enabled:
            continue
        enabled.add(f)
        if f not in table and f in deps and deps[f].optional:
            optional_on.add(f)  # implicit feature of an optional dependency
        for item in table.get(f, []):
            if item.startswith("dep:"):
                optional_on.add(item[4:])
            elif "/" in item:
                dep, feat = item.split("/", 1)
                if dep.endswith("?"):
                    weak.append((dep[:-1], feat))
                else:
                    dep_features.setdefault(dep, set()).add(feat)
                    if dep in deps and deps[dep].optional:
                        optional_on.add(dep)
                    if dep in table:
                        todo.append(dep)
            else:
                todo.append(item)
    for dep, feat in weak:
        if dep in optional_on or (dep in deps and not deps[dep].optional):
            dep_features.setdefault(dep, set()).add(feat)
    return enabled, optional_on, dep_features


def lambda_build(repo: Path = REPO, package: str = LAMBDA_PACKAGE) -> dict[str, CrateBuild]:
    """The workspace crates `cargo build -p <package>` compiles, with the
    features Cargo enables on each."""
    ws_path = repo / "Cargo.toml"
    workspace = _load_toml(ws_path)
    workspace["__dir__"] = repo
    members: dict[str, Path] = {}
    for manifest_path in sorted(repo.glob("crates/*/Cargo.toml")):
        name = _load_toml(manifest_path).get("package", {}).get("name")
        if name:
            members[name] = manifest_path.parent.resolve()
    if package not in members:
        pytest.fail(f"crate {package} not found: crates/{package}/Cargo.toml is missing. The Lambda "
                    "crate must exist for this test to know what the function runs")

    builds: dict[str, CrateBuild] = {}
    requests: dict[str, set[str]] = {package: {"default"}}
    todo = [package]
    while todo:
        name = todo.pop()
        crate_dir = members[name]
        manifest = _load_toml(crate_dir / "Cargo.toml")
        build = builds.setdefault(name, CrateBuild(name, crate_dir, manifest))
        deps = _dependencies(crate_dir, manifest, workspace)
        enabled, optional_on, dep_features = _expand_features(
            requests[name], manifest.get("features", {}), deps)
        build.features = enabled
        for key, dep in deps.items():
            if dep.optional and key not in optional_on:
                continue
            if dep.path is None or dep.package not in members or members[dep.package] != dep.path:
                continue  # a registry crate: not ours to read
            want = set(dep.features) | dep_features.get(key, set())
            if dep.default_features:
                want.add("default")
            before = requests.get(dep.package)
            requests[dep.package] = (before or set()) | want
            if before is None or not want <= before:
                todo.append(dep.package)
    return builds


def _targets(build: CrateBuild, binary: str | None) -> list[Path]:
    """Root files: the crate's library, and the named binary if asked for."""
    roots = []
    lib = build.manifest.get("lib", {}).get("path", "src/lib.rs")
    if (build.dir / lib).is_file():
        roots.append(build.dir / lib)
    if binary is not None:
        bins = {b.get("name"): b.get("path") for b in build.manifest.get("bin", [])}
        if binary in bins:
            path = bins[binary] or f"src/bin/{binary}.rs"
        elif binary == build.manifest["package"]["name"]:
            path = "src/main.rs"
        else:
            path = f"src/bin/{binary}.rs"
        if not (build.dir / path).is_file():
            pytest.fail(f"{build.dir}/Cargo.toml: binary {binary} has no source ({path})")
        roots.append(build.dir / path)
    if not roots:
        pytest.fail(f"{build.dir}: no library and no binary to read")
    return roots


def lambda_code(repo: Path = REPO, package: str = LAMBDA_PACKAGE,
                binary: str = LAMBDA_BINARY) -> dict[str, dict[Path, str]]:
    """Production sources compiled into the Lambda binary, by crate."""
    code = {}
    for name, build in lambda_build(repo, package).items():
        sources: dict[Path, str] = {}
        for root in _targets(build, binary if name == package else None):
            sources.update(target_sources(root, build.features))
        code[name] = sources
    return code


def runtime_dependency_names(build: CrateBuild, repo: Path = REPO) -> set[str]:
    workspace = _load_toml(repo / "Cargo.toml")
    workspace["__dir__"] = repo
    deps = _dependencies(build.dir, build.manifest, workspace)
    _, optional_on, _ = _expand_features(build.features, build.manifest.get("features", {}), deps)
    return {d.package for k, d in deps.items() if not d.optional or k in optional_on}


# --------------------------------------------------------------------------
# What the code reads and calls
# --------------------------------------------------------------------------

def uploadgate_settings(sources: dict[Path, str]) -> set[str]:
    found = set()
    for text in sources.values():
        found |= set(re.findall(r'"(UPLOADGATE_[A-Z0-9_]+)"', text))
    return found


def sdk_actions(sources: dict[Path, str], operations: dict[str, str | None],
                repo: Path = REPO) -> dict[str, set[str]]:
    """IAM actions needed by the SDK calls in `sources`, with where they come from."""
    needed: dict[str, set[str]] = {}

    def need(action: str, why: str) -> None:
        needed.setdefault(action, set()).add(why)

    for path, text in sources.items():
        rel = path.relative_to(repo) if path.is_relative_to(repo) else path
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


def required_actions(repo: Path = REPO) -> tuple[dict[str, set[str]], list[str]]:
    """The DynamoDB and S3 actions the Lambda's code performs (with where
    they come from), and the crates scanned for them."""
    builds = lambda_build(repo)
    code = lambda_code(repo)
    needed: dict[str, set[str]] = {}
    scanned = []
    for name, sources in sorted(code.items()):
        deps = runtime_dependency_names(builds[name], repo)
        for sdk, (rust_path, operations) in SDK_CRATES.items():
            if sdk not in deps and not any(rust_path in t for t in sources.values()):
                continue
            scanned.append(f"{name} ({sdk})")
            for action, why in sdk_actions(sources, operations, repo).items():
                needed.setdefault(action, set()).update(why)
    return needed, scanned


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


def module_environment() -> dict[str, str]:
    """`environment = { KEY = expression }` in the module's locals."""
    text = strip_hcl_comments((MODULE / "main.tf").read_text(encoding="utf-8"))
    m = re.search(r"\benvironment\s*=\s*\{(.*?)\n\s*\}", text, flags=re.S)
    assert m, "no `environment = { ... }` map in infra/modules/uploadgate/main.tf"
    env = dict(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*(.+?)\s*$", m.group(1), flags=re.M))
    # The map must be what the function gets.
    lambda_tf = strip_hcl_comments((MODULE / "lambda.tf").read_text(encoding="utf-8"))
    assert re.search(r"variables\s*=\s*local\.environment\b", lambda_tf), \
        "aws_lambda_function must take its environment from local.environment"
    return env


def module_environment_keys() -> set[str]:
    return set(module_environment())


def iam_statements() -> list[dict]:
    """Statements of the execution role's policy document in iam.tf: sid,
    actions and the resources expression, as text."""
    text = strip_hcl_comments((MODULE / "iam.tf").read_text(encoding="utf-8"))
    m = re.search(r'data\s+"aws_iam_policy_document"\s+"lambda"\s*\{', text)
    assert m, 'no data "aws_iam_policy_document" "lambda" in iam.tf'
    doc = text[m.end():_matching(text, m.end() - 1)]
    statements = []
    for s in re.finditer(r"\bstatement\s*\{", doc):
        body = doc[s.end():_matching(doc, s.end() - 1)]
        sid = re.search(r'\bsid\s*=\s*"([^"]+)"', body)
        actions = re.search(r"\bactions\s*=\s*\[(.*?)\]", body, flags=re.S)
        resources = re.search(r"\bresources\s*=\s*\[(.*?)\]", body, flags=re.S)
        statements.append({
            "sid": sid.group(1) if sid else None,
            "actions": re.findall(r'"([^"]+)"', actions.group(1)) if actions else [],
            "resources": re.sub(r"\s+", "", resources.group(1)).rstrip(",").split(",") if resources else [],
        })
    return statements


def granted_actions() -> set[str]:
    return {a for s in iam_statements() for a in s["actions"] if a.startswith(("dynamodb:", "s3:"))}


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_lambda_closure():
    builds = lambda_build()
    # What the Lambda is made of, and what it is not: the CLI stays out, so
    # its `admin` feature on uploadgate-dynamodb is not unified in.
    assert {"uploadgate-lambda", "uploadgate-http", "uploadgate-dynamodb", "uploadgate-s3",
            "uploadgate-core"} <= set(builds), sorted(builds)
    assert "uploadgate" not in builds, sorted(builds)  # the CLI, which enables `admin`
    code = lambda_code()
    assert all(code.values()), {k: len(v) for k, v in code.items()}


def test_every_setting_the_code_reads_is_wired():
    lambda_settings = set()
    for sources in lambda_code().values():
        lambda_settings |= uploadgate_settings(sources)
    assert lambda_settings, ("no \"UPLOADGATE_*\" string literal in the Lambda's code: the settings moved "
                             "or are built dynamically; update this test rather than let it pass on nothing")
    everywhere = set()
    for manifest in REPO.glob("crates/*/Cargo.toml"):
        for path in sorted((manifest.parent / "src").rglob("*.rs")):
            everywhere |= uploadgate_settings({path: strip_rust_comments(path.read_text(encoding="utf-8"))})
    gone = sorted(LOCAL_ONLY_SETTINGS - everywhere)
    assert not gone, f"LOCAL_ONLY_SETTINGS names settings no code reads any more: {gone}"

    wanted = lambda_settings - LOCAL_ONLY_SETTINGS
    wired = module_environment_keys()
    missing = sorted(wanted - wired)
    assert not missing, f"read by the Lambda's code but not set by the module: {missing}"
    stale = sorted(k for k in wired if k.startswith("UPLOADGATE_") and k not in wanted)
    assert not stale, f"set by the module but never read by the Lambda's code: {stale}"
    local_leak = sorted(wired & LOCAL_ONLY_SETTINGS)
    assert not local_leak, f"local-server-only settings in the Lambda environment: {local_leak}"
    assert all(k.startswith("UPLOADGATE_") for k in wired), sorted(wired)


def test_fixed_settings_of_this_topology():
    env = module_environment()
    fixed = {
        "UPLOADGATE_STORE": '"dynamodb"',
        "UPLOADGATE_TARGET": '"s3"',
        "UPLOADGATE_CLIENT_IP": '"cloudfront"',
        "UPLOADGATE_LOG_FORMAT": '"json"',
        "UPLOADGATE_METRICS": '"emf"',
        "UPLOADGATE_TABLE": "aws_dynamodb_table.limits.name",
        "UPLOADGATE_BUCKET": "aws_s3_bucket.uploads.id",
    }
    assert {k: env.get(k) for k in fixed} == fixed


def test_iam_grants_exactly_the_sdk_calls():
    needed, scanned = required_actions()
    assert needed, ("found no DynamoDB or S3 call in the Lambda's code (crates scanned for SDK calls: "
                    f"{scanned or 'none'})")
    # The store and the presigner are in the Lambda; if either vanished from
    # the scan, the check below would pass on half the picture.
    assert any(a.startswith("dynamodb:") for a in needed), sorted(needed)
    assert any(a.startswith("s3:") for a in needed), sorted(needed)

    granted = granted_actions()
    assert not [a for a in granted if "*" in a], f"wildcard actions in iam.tf: {sorted(granted)}"
    missing = sorted(set(needed) - granted)
    assert not missing, "performed by the code but not granted: " + "; ".join(
        f"{a} ({', '.join(sorted(needed[a]))})" for a in missing)
    extra = sorted(granted - set(needed))
    assert not extra, f"granted in iam.tf but never performed by the Lambda's code: {extra}"


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
            # The comment must sit in the statement that uses "*".
            block = text[text.index(f'sid = "{s["sid"]}"'):]
            block = block[:block.index('resources = ["*"]')]
            assert re.search(r"#.*requires", block), f'statement {s["sid"]} uses "*" without saying why'
        else:
            assert '"*"' not in s["resources"], s
    assert {"dynamodb", "s3", "logs"} <= seen_services
    main = strip_hcl_comments((MODULE / "main.tf").read_text(encoding="utf-8"))
    assert re.search(r'upload_objects_arn\s*=\s*"\$\{aws_s3_bucket\.uploads\.arn\}/\$\{var\.key_prefix\}\*"', main)


# --------------------------------------------------------------------------
# The readers themselves, on sample sources: they must find what is there
# and ignore comments, tests, switched-off features and crates the Lambda
# does not build.
# --------------------------------------------------------------------------

SAMPLE_STORE = r'''
//! Store. Mentions "UPLOADGATE_IN_DOC" and client.scan() in a comment.
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
const TABLE: &str = "UPLOADGATE_TABLE";
/* block comment: "UPLOADGATE_IN_BLOCK" .update_item() */
async fn cas(c: &Client) {
    let q = '"'; // a char literal that looks like a string start
    let b = '{'; // and one that looks like a block
    c.get_item().table_name(t).send().await;
    c.transact_write_items()
        .transact_items(TransactWriteItem::builder().put(Put::builder().build()?).build())
        .send().await;
    let s = r#"raw "UPLOADGATE_RAW" string { "#;
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

# A crate whose table administration sits behind `admin`, in every form.
SAMPLE_GATED_LIB = r'''
mod client;
#[cfg(feature = "admin")]
mod table;
#[cfg(feature = "admin")]
pub use table::{create, Created};
#[cfg(all(feature = "admin", not(test)))]
pub mod inline_admin {
    pub async fn ttl(c: &Client) { c.update_time_to_live().send().await; let _ = "UPLOADGATE_ADMIN_INLINE"; }
}
#[cfg(not(feature = "admin"))]
const MODE: &str = "UPLOADGATE_WITHOUT_ADMIN";
pub struct Store { table: String, #[cfg(feature = "admin")] admin: Admin<A, B>, cache: Cache }
impl Store {
    #[cfg(feature = "admin")]
    pub async fn drop_all(&self) { self.c.delete_table().send().await; }
    pub async fn load(&self) { self.c.get_item().send().await; }
}
'''


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_readers_on_samples(tmp_path):
    src = tmp_path / "src"
    _write(src / "lib.rs", SAMPLE_STORE)
    sources = target_sources(src / "lib.rs", set())
    assert uploadgate_settings(sources) == {"UPLOADGATE_TABLE", "UPLOADGATE_RAW"}
    actions = sdk_actions(sources, DYNAMODB_OPERATIONS, tmp_path)
    assert set(actions) == {"dynamodb:GetItem", "dynamodb:PutItem"}

    presign = {tmp_path / "p.rs": strip_rust_comments(SAMPLE_PRESIGN)}
    assert set(sdk_actions(presign, S3_OPERATIONS, tmp_path)) == {"s3:PutObject"}

    # Out-of-line test modules (`#[cfg(test)] mod tests;`) are not production
    # code, nor are files no `mod` reaches; inline modules nest paths.
    _write(src / "lib.rs", 'mod store;\n#[cfg(test)]\nmod tests;\nconst A: &str = "UPLOADGATE_A";\n'
                           'mod outer { pub mod inner; }\n')
    _write(src / "tests.rs", 'const B: &str = "UPLOADGATE_IN_TEST_FILE";\n')
    _write(src / "store.rs", '#[cfg(test)] mod fixtures;\nmod part;\nconst C: &str = "UPLOADGATE_C";\n')
    _write(src / "store" / "fixtures.rs", 'const D: &str = "UPLOADGATE_IN_FIXTURES";\n')
    _write(src / "store" / "part.rs", 'const E: &str = "UPLOADGATE_E";\n')
    _write(src / "outer" / "inner.rs", 'const F: &str = "UPLOADGATE_F";\n')
    _write(src / "orphan.rs", 'const G: &str = "UPLOADGATE_IN_ORPHAN";\n')
    assert uploadgate_settings(target_sources(src / "lib.rs", set())) == {
        "UPLOADGATE_A", "UPLOADGATE_C", "UPLOADGATE_E", "UPLOADGATE_F"}

    # A `mod` whose file is missing is an error, not an empty module.
    _write(src / "lib.rs", "mod gone;\n")
    with pytest.raises(pytest.fail.Exception):
        target_sources(src / "lib.rs", set())


def test_cfg_predicates():
    assert eval_cfg("test", set()) is False
    assert eval_cfg('feature = "admin"', {"admin"}) is True
    assert eval_cfg('feature = "admin"', set()) is False
    assert eval_cfg('not(feature = "admin")', set()) is True
    assert eval_cfg('all(unix, not(test), target_os = "linux")', set()) is True
    assert eval_cfg('any(windows, target_arch = "x86_64")', set()) is False
    assert eval_cfg("tokio_unstable", set()) is None
    assert eval_cfg("not(tokio_unstable)", set()) is None
    assert eval_cfg("all(tokio_unstable, test)", set()) is False


def test_feature_gated_modules_are_ignored_unless_enabled(tmp_path):
    src = tmp_path / "src"
    _write(src / "lib.rs", SAMPLE_GATED_LIB)
    _write(src / "client.rs", "pub fn put(c: &Client) { c.put_item().send(); }\n")
    _write(src / "table.rs", 'pub fn create(c: &Client) { c.create_table().send(); let _ = "UPLOADGATE_ADMIN"; }\n')

    off = target_sources(src / "lib.rs", set())
    assert set(off) == {src / "lib.rs", src / "client.rs"}
    assert set(sdk_actions(off, DYNAMODB_OPERATIONS, tmp_path)) == {"dynamodb:GetItem", "dynamodb:PutItem"}
    assert uploadgate_settings(off) == {"UPLOADGATE_WITHOUT_ADMIN"}
    assert "pub use table" not in off[src / "lib.rs"]
    # The struct around a switched-off field survives.
    assert re.search(r"pub struct Store \{ table: String,\s+cache: Cache \}", off[src / "lib.rs"])

    on = target_sources(src / "lib.rs", {"admin"})
    assert set(on) == {src / "lib.rs", src / "client.rs", src / "table.rs"}
    assert set(sdk_actions(on, DYNAMODB_OPERATIONS, tmp_path)) == {
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:CreateTable", "dynamodb:UpdateTimeToLive",
        "dynamodb:DeleteTable"}
    assert uploadgate_settings(on) == {"UPLOADGATE_ADMIN", "UPLOADGATE_ADMIN_INLINE"}


WORKSPACE_SAMPLE = {
    "Cargo.toml": '''
[workspace]
members = ["crates/*"]
[workspace.dependencies]
app-store = { path = "crates/app-store" }
app-core = { path = "crates/app-core", default-features = false }
aws-sdk-dynamodb = "1"
''',
    # The function: uses the store without `admin`, and core.
    "crates/app-lambda/Cargo.toml": '''
[package]
name = "app-lambda"
[[bin]]
name = "app-lambda"
path = "src/main.rs"
[dependencies]
app-store.workspace = true
app-core = { workspace = true, features = ["fast"] }
[dev-dependencies]
app-store = { workspace = true, features = ["admin"] }
app-devtools = { path = "../app-devtools" }
''',
    "crates/app-lambda/src/main.rs": 'fn main() { let _ = "UPLOADGATE_MAIN"; }\n',
    "crates/app-lambda/src/bin/other.rs": 'fn main() { c.scan().send(); }\n',
    "crates/app-store/Cargo.toml": '''
[package]
name = "app-store"
[features]
default = ["metrics"]
metrics = []
admin = []
[dependencies]
aws-sdk-dynamodb.workspace = true
app-core.workspace = true
''',
    "crates/app-store/src/lib.rs": '''
#[cfg(feature = "admin")]
mod table;
#[cfg(feature = "metrics")]
const M: &str = "UPLOADGATE_METRICS_ON";
pub async fn load(c: &Client) { c.get_item().send().await; }
''',
    "crates/app-store/src/table.rs": "pub async fn create(c: &Client) { c.create_table().send().await; }\n",
    "crates/app-core/Cargo.toml": '''
[package]
name = "app-core"
[features]
default = ["slow"]
slow = []
fast = []
''',
    "crates/app-core/src/lib.rs": '#[cfg(feature = "slow")] const S: &str = "UPLOADGATE_SLOW";\n'
                                  '#[cfg(feature = "fast")] const F: &str = "UPLOADGATE_FAST";\n',
    # Outside the closure: the CLI (enables admin) and a dev-only crate.
    "crates/app-cli/Cargo.toml": '''
[package]
name = "app-cli"
[dependencies]
app-store = { workspace = true, features = ["admin"] }
aws-sdk-dynamodb.workspace = true
''',
    "crates/app-cli/src/main.rs": 'fn main() { c.delete_table().send(); let _ = "UPLOADGATE_CLI"; }\n',
    "crates/app-devtools/Cargo.toml": '[package]\nname = "app-devtools"\n[dependencies]\naws-sdk-dynamodb = "1"\n',
    "crates/app-devtools/src/lib.rs": "pub fn wipe(c: &Client) { c.delete_item().send(); }\n",
}


def test_closure_on_a_sample_workspace(tmp_path):
    for rel, text in WORKSPACE_SAMPLE.items():
        _write(tmp_path / rel, text)

    builds = lambda_build(tmp_path, "app-lambda")
    # The CLI and the dev-dependency are not part of the function.
    assert set(builds) == {"app-lambda", "app-store", "app-core"}
    assert builds["app-store"].features == {"default", "metrics"}
    # default-features = false in the workspace entry; `fast` asked for.
    assert builds["app-core"].features == {"fast"}

    code = lambda_code(tmp_path, "app-lambda", "app-lambda")
    # The other binary of the Lambda crate is not in the zip either.
    assert [p.name for p in code["app-lambda"]] == ["main.rs"]
    settings = set().union(*(uploadgate_settings(s) for s in code.values()))
    assert settings == {"UPLOADGATE_MAIN", "UPLOADGATE_METRICS_ON", "UPLOADGATE_FAST"}
    actions: set[str] = set()
    for sources in code.values():
        actions |= set(sdk_actions(sources, DYNAMODB_OPERATIONS, tmp_path))
    assert actions == {"dynamodb:GetItem"}

    # If the function itself enabled `admin`, table creation would be its code.
    manifest = tmp_path / "crates/app-lambda/Cargo.toml"
    manifest.write_text(manifest.read_text().replace(
        "app-store.workspace = true", 'app-store = { workspace = true, features = ["admin"] }'))
    code = lambda_code(tmp_path, "app-lambda", "app-lambda")
    assert "admin" in lambda_build(tmp_path, "app-lambda")["app-store"].features
    assert set(sdk_actions(code["app-store"], DYNAMODB_OPERATIONS, tmp_path)) == {
        "dynamodb:GetItem", "dynamodb:CreateTable"}

    # No Lambda crate: a clear failure, not an empty pass.
    with pytest.raises(pytest.fail.Exception, match="app-nothing"):
        lambda_build(tmp_path, "app-nothing")


def test_hcl_readers_on_module():
    # The module grants and wires something; the readers must see it.
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "s3:PutObject"} <= granted_actions()
    assert {"UPLOADGATE_STORE", "UPLOADGATE_TABLE", "UPLOADGATE_BUCKET"} <= module_environment_keys()
    sids = {s["sid"] for s in iam_statements()}
    assert {"LimitsTableItems", "PresignUploads", "OwnLogGroup"} <= sids
