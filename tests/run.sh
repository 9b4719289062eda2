#!/usr/bin/env bash
# The whole test suite: Rust unit tests, then the integration tests that drive
# the real broker binary with real Kafka clients (kafka-python, confluent-kafka, kcat,
# Apache Kafka's own tools and Java client).
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

# Apache Kafka's tools, server and Java client (pinned in tests/java/pom.xml),
# from Maven Central into ~/.m2; tests/kafka_java.py runs them.
if ! command -v java >/dev/null 2>&1; then
    say "installing a Java runtime (Debian package)"
    apt_install openjdk-17-jdk-headless
fi
if ! command -v mvn >/dev/null 2>&1; then
    say "installing Maven (Debian package)"
    apt_install maven
fi
say "resolving Apache Kafka's jars (tests/java/setup.sh)"
run_quiet bash tests/java/setup.sh

# franz-go, Go's Kafka client (pinned in tests/go/go.mod and go.sum), from the
# Go module proxy into ~/go/pkg/mod; test_franz_go.py runs the binary built here.
if ! command -v go >/dev/null 2>&1; then
    say "installing Go (Debian package)"
    apt_install golang
fi
say "building the franz-go checks with $(go version | cut -d' ' -f3) (tests/go)"
if ! (cd tests/go && run_quiet go build -o target/franzgo .); then
    say "tests/go needs the Go its go.mod names (franz-go 1.22 asks for 1.26); an older Go fetches it with GOTOOLCHAIN=auto"
    exit 1
fi
export FRANZGO_BIN="$PWD/tests/go/target/franzgo"

# slowfs, the chaos tool's slow disk (a FUSE loopback on go-fuse, pinned in
# tools/chaos/slowfs/go.mod and go.sum, from the Go module proxy into ~/go/pkg/mod).
say "building slowfs (tools/chaos/slowfs)"
(cd tools/chaos/slowfs && run_quiet go build -o target/slowfs .)
export SLOWFS_BIN="$PWD/tools/chaos/slowfs/target/slowfs"

# ---- 2. build once -------------------------------------------------------------
LOCKED=()
if [ -f Cargo.lock ]; then LOCKED=(--locked); fi
say "cargo build --release --workspace ${LOCKED[*]}"
cargo build --release --workspace "${LOCKED[@]}"
say "cargo test --release --workspace"
cargo test --release --workspace "${LOCKED[@]}"

# ---- 2a. the habits that keep the tree clean: formatted, no clippy warnings -----
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        say "installing the $component component"
        run_quiet rustup component add "$component"
    fi
done
say "cargo fmt --check; cargo clippy --all-targets -D warnings"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets "${LOCKED[@]}" -- -D warnings

# ---- 2b. fuzzing: a short coverage-guided run of each target (fuzz/README.md) -----
# cargo-fuzz needs nightly flags: stable Rust takes them with RUSTC_BOOTSTRAP=1.
# Without it (no network, no C++ compiler), `cargo test` above already replayed
# the corpus and 300 seeded mutations of each input (src/fuzz.rs).
CARGO_FUZZ_VERSION=0.12.0
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
FUZZ_TARGETS=(request_frame record_batch group_events)
fuzz_ready() {
    cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"
}
if [ "${CORELOG_SKIP_FUZZ:-0}" = 1 ]; then
    say "fuzzing skipped (CORELOG_SKIP_FUZZ=1)"
else
    if ! fuzz_ready; then
        if ! command -v c++ >/dev/null 2>&1; then
            say "installing a C++ compiler for libFuzzer (Debian package)"
            apt_install g++ || true
        fi
        say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
        run_quiet cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked || true
    fi
    if ! fuzz_ready; then
        say "cargo-fuzz $CARGO_FUZZ_VERSION unavailable: the fuzz targets ran only as cargo test's corpus replay"
    elif ! (cd fuzz && run_quiet env RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none --release); then
        say "the fuzz targets did not build: they ran only as cargo test's corpus replay"
    else
        for target in "${FUZZ_TARGETS[@]}"; do
            say "fuzzing $target for ${FUZZ_SECONDS}s"
            # New inputs go to a scratch directory; the committed corpus is only read.
            scratch=$(mktemp -d)
            if ! (cd fuzz && run_quiet env RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --release "$target" \
                    "$scratch" "corpus/$target" -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10); then
                rm -rf "$scratch"
                say "fuzz target $target crashed: the input is in fuzz/artifacts/$target/ (fuzz/README.md says how to replay it)"
                exit 1
            fi
            rm -rf "$scratch"
        done
    fi
fi

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
