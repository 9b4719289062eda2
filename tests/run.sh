#!/usr/bin/env bash
# The whole test suite: Rust unit tests, then the integration tests that drive
# the real broker binary with real Kafka clients (kafka-python, confluent-kafka, kcat).
#
# Installs what it needs (idempotent, quiet), builds once, runs everything.
# Exits non-zero on any failure.  Extra arguments go to pytest, e.g.
#   bash tests/run.sh -k confluent -x
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[tests/run.sh] %s\n' "$*" >&2; }

run_quiet() {
    # run a command silently; show its output only if it fails
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        say "failed: $*"
        return 1
    fi
}

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        run_quiet $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    run_quiet $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# ---- 1. tools ------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
    say "installing kcat (Debian package)"
    apt_install kcat
fi

PY=${PYTHON:-python3}
if ! "$PY" -m pip --version >/dev/null 2>&1; then
    say "installing pip (Debian package)"
    apt_install python3-pip
fi
if ! "$PY" - <<'PYCHECK' >/dev/null 2>&1
# exit 0 only if every requirement is already installed at an acceptable version
import sys
from importlib.metadata import version
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
for line in open("tests/requirements.txt"):
    line = line.split("#")[0].strip()
    if line:
        r = Requirement(line)
        if not r.specifier.contains(version(r.name), prereleases=True):
            sys.exit(1)
PYCHECK
then
    say "installing Python packages from tests/requirements.txt"
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    PIP=("$PY" -m pip install -q -r tests/requirements.txt)
    if ! run_quiet "${PIP[@]}"; then
        # Debian's system Python is "externally managed" (PEP 668)
        say "retrying pip with --break-system-packages"
        run_quiet "${PIP[@]}" --break-system-packages
    fi
fi

# ---- 2. build once -------------------------------------------------------------
LOCKED=()
if [ -f Cargo.lock ]; then LOCKED=(--locked); fi
say "cargo build --release ${LOCKED[*]}"
cargo build --release "${LOCKED[@]}"
say "cargo test --release"
cargo test --release "${LOCKED[@]}"

TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
export CORELOG_BIN="$TARGET_DIR/release/corelog"
if [ ! -x "$CORELOG_BIN" ]; then
    say "no broker binary at $CORELOG_BIN after the build"
    exit 1
fi

# ---- 3. integration tests ------------------------------------------------------
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the work tree
say "pytest against $CORELOG_BIN"
exec "$PY" -m pytest tests -q -rfEs --timeout=300 -p no:cacheprovider "$@"
