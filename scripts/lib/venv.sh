# shellcheck shell=bash
# ensure_venv NAME REQUIREMENTS PYTHON
#
# Prints the path of a Python virtualenv holding the pinned packages of
# REQUIREMENTS, creating it on first use under
# ${UPLOADGATE_CACHE:-~/.cache/uploadgate}/venv-NAME-<key>. The key hashes the
# requirements and the interpreter's version, so changing a pin or Python
# builds a new venv; a venv is used only once its install completed.
ensure_venv() {
  local name="$1" reqs="$2" python="$3" cache key venv
  cache="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
  key="$({ cat "$reqs"; "$python" -V 2>&1; } | sha256sum | cut -c1-12)"
  venv="$cache/venv-$name-$key"
  if [ ! -f "$venv/.complete" ]; then
    echo "$name: creating $venv with $("$python" -V 2>&1) (first run downloads packages)" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    "$python" -m venv "$venv" >&2
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet \
      --cache-dir "$cache/pip" -r "$reqs" >&2
    touch "$venv/.complete"
  fi
  printf '%s\n' "$venv"
}
