#!/usr/bin/env bash
# Checks of the Terraform in infra/, offline:
#   1. terraform fmt -check
#   2. terraform init -backend=false + validate, module and example, against
#      the AWS provider in a local filesystem mirror (found, not hard-coded)
#   2b. terraform test of the module (tests/*.tftest.hcl, mock providers):
#      the function's environment per identity mode, and the variable checks
#   3. checkov --skip-download: no failed check, every skip inline with a reason
#   4. pytest: test_agreement.py (code <-> infra: it runs
#      `cargo run -p uploadgate-lambda --example manifest` and `cargo tree`,
#      in CARGO_TARGET_DIR if set), test_apply.py (apply the example to
#      moto's server on 127.0.0.1, read it back, destroy) and test_docs.py
#      (README tables; the provider schema vs the module)
#
# Python tools come from .ci/requirements-infra.txt, in a venv cached under
# ${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}. Terraform and cargo must be
# on PATH and the hashicorp/aws provider in a filesystem mirror; set
# TF_PROVIDER_MIRROR to the mirror directory if it is not in a usual place.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
REQUIREMENTS=.ci/requirements-infra.txt
START=$SECONDS

step() { printf '\n== %s [%ds]\n' "$*" $((SECONDS - START)); }
die() { printf 'infra/test/run.sh: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/uploadgate-infra.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# No update checks, no prompts, and no plugin cache of the caller's.
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
unset TF_PLUGIN_CACHE_DIR TF_DATA_DIR
export PYTHONDONTWRITEBYTECODE=1

# ---------------------------------------------------------------------------
step "tools"
command -v terraform >/dev/null || die "terraform is not on PATH"
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || die "cargo is not on PATH (test_agreement.py asks it what the Lambda is made of)"

# The mirror holds registry.terraform.io/hashicorp/aws/<version>/<os_arch>/.
find_mirror() {
  local root hit
  for root in "${TF_PROVIDER_MIRROR:-}" \
    /opt/tf-plugins /opt/terraform/plugins /opt/terraform-plugins \
    /usr/local/share/terraform/plugins /usr/share/terraform/plugins \
    "$HOME/.terraform.d/plugins" "${XDG_DATA_HOME:-$HOME/.local/share}/terraform/plugins" \
    /opt /usr/local/share /usr/local/lib /usr/share "$HOME"; do
    [ -n "$root" ] && [ -d "$root" ] || continue
    hit=$(find "$root" -maxdepth 6 -type d -path '*/registry.terraform.io/hashicorp/aws' \
      -not -path '*/.terraform/*' -print -quit 2>/dev/null || true)
    if [ -n "$hit" ]; then
      printf '%s\n' "${hit%/registry.terraform.io/hashicorp/aws}"
      return 0
    fi
  done
  return 1
}
MIRROR=$(find_mirror) || die "no filesystem mirror with registry.terraform.io/hashicorp/aws found (set TF_PROVIDER_MIRROR)"
echo "provider mirror: $MIRROR ($(ls "$MIRROR/registry.terraform.io/hashicorp/aws" | tr '\n' ' '))"

export TF_CLI_CONFIG_FILE="$WORK/terraform.rc"
cat >"$TF_CLI_CONFIG_FILE" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
EOF
terraform version | sed -n 1p

# Prefer 3.11 (checkov's pins are tested there); the venv is keyed by the
# requirements and the interpreter version (scripts/lib/venv.sh).
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
# shellcheck source=../../scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
VENV=$(ensure_venv infra "$REQUIREMENTS" "$PYTHON")
echo "python tools: $VENV"

# ---------------------------------------------------------------------------
step "terraform fmt -check -recursive infra"
terraform fmt -check -recursive -diff infra

# ---------------------------------------------------------------------------
# Validate copies, so no .terraform/ or lock file lands in the work tree.
tf_quiet() {
  local log="$WORK/tf.log"
  if ! terraform "$@" -no-color >"$log" 2>&1; then
    cat "$log" >&2
    die "terraform $* failed"
  fi
}
mkdir -p "$WORK/tf" "$WORK/module"
cp -R infra/modules infra/examples "$WORK/tf/"
cp -R infra/modules/uploadgate "$WORK/module/"
find "$WORK/tf" "$WORK/module" \( -name .terraform -o -name '.terraform.lock.hcl' -o -name '*.tfstate*' \) \
  -prune -exec rm -rf {} +

step "terraform validate infra/modules/uploadgate"
# A module that declares configuration_aliases cannot be validated on its
# own: Terraform wants the aliased provider configured. Give a separate copy
# a stand-in configuration, as a calling module would.
cat >"$WORK/module/uploadgate/zz_validate_providers.tf" <<'EOF'
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}
EOF
tf_quiet -chdir="$WORK/module/uploadgate" init -backend=false -input=false
terraform -chdir="$WORK/module/uploadgate" validate -no-color
# test_docs.py checks the provider's arguments against the module.
terraform -chdir="$WORK/module/uploadgate" providers schema -json >"$WORK/provider-schema.json"
export UPLOADGATE_TF_PROVIDER_SCHEMA="$WORK/provider-schema.json"

step "terraform test infra/modules/uploadgate (settings per identity mode, variable checks)"
# Mock providers: no AWS, no emulator. The module hashes its zip at plan
# time, so hand it one.
printf 'not a function: the plan only hashes it\n' >"$WORK/stub.zip"
terraform -chdir="$WORK/module/uploadgate" test -no-color -var "lambda_zip_path=$WORK/stub.zip"

step "terraform validate infra/examples/complete"
tf_quiet -chdir="$WORK/tf/examples/complete" init -backend=false -input=false
terraform -chdir="$WORK/tf/examples/complete" validate -no-color

# ---------------------------------------------------------------------------
step "checkov --skip-download infra"
# Skips must be inline, next to their resource, with a reason.
bad=$(grep -rn --include='*.tf' 'checkov:skip' infra |
  grep -Ev '^[^:]+:[0-9]+:[[:space:]]*#checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+:[^[:space:]].{15,}$' || true)
[ -z "$bad" ] || die "checkov skip without a one-line reason:
$bad"
"$VENV/bin/checkov" --directory infra --framework terraform --skip-download \
  --compact --quiet --output cli

# ---------------------------------------------------------------------------
step "pytest infra/test (agreement, apply/destroy on moto, docs)"
"$VENV/bin/python" -m pytest infra/test -p no:cacheprovider -ra

step "infra checks passed"
