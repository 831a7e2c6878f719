#!/usr/bin/env bash
# The project's test command (CI runs exactly this): formatting, lints, every
# Rust test, then the official MCP SDK clients (Python and TypeScript) and the
# dashboard in headless Chromium against the built server.
#
# It installs what it needs when missing: a Python venv with the pinned `mcp`
# SDK (target/interop/venv), the pinned npm packages (tests/interop/node), and
# Debian's chromium and redis-server (apt, as root; the Redis tests start their
# own redis-server on a free loopback port).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Longer soak and the root-only fault tests in CI; quicker by hand.
if [ -n "${CI:-}" ]; then
  export EXECLAYER_SOAK_SECS="${EXECLAYER_SOAK_SECS:-60}"
  export EXECLAYER_REQUIRE_ROOT_TESTS="${EXECLAYER_REQUIRE_ROOT_TESTS:-1}"
fi

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --all-targets --locked -- -D warnings

step "Rust tests (unit, integration through real MCP clients, schemas)"
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install Debian's redis-server package (sudo apt-get install redis-server)" >&2
    exit 1
  fi
fi
cargo test --locked

# Coverage-guided fuzzing: each target briefly (EXECLAYER_FUZZ_SECS, 30 s),
# from its kept corpus (read only; new finds go to a scratch folder; a crash
# fails the run and is written to fuzz/artifacts/). On by default in CI
# ($CI set); by hand EXECLAYER_FUZZ=1. The instrumented build runs on the
# nightly features of the stable toolchain (RUSTC_BOOTSTRAP=1). `cargo test`
# already replays the kept corpus on stable (tests/suite/fuzz_corpus.rs); the
# long runs are recorded in SECURITY.md.
if [ -n "${EXECLAYER_FUZZ:-${CI:-}}" ]; then
  step "fuzzing (cargo-fuzz, ${EXECLAYER_FUZZ_SECS:-30} s a target from fuzz/corpus)"
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
  fi
  export RUSTC_BOOTSTRAP=1
  cargo fuzz build -O
  for target in $(cargo fuzz list); do
    scratch=$(mktemp -d)
    cargo fuzz run -O "$target" "$scratch" "fuzz/corpus/$target" -- \
      -max_total_time="${EXECLAYER_FUZZ_SECS:-30}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12
    rm -rf "$scratch"
  done
  unset RUSTC_BOOTSTRAP
fi

BIN="$PWD/target/debug/execlayer"

step "official Python SDK (mcp, pinned)"
VENV=target/interop/venv
STAMP="$VENV/.requirements.sha256"
WANT=$(sha256sum tests/interop/requirements.txt | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
  echo "$WANT" > "$STAMP"
fi
"$VENV/bin/python" tests/interop/python_sdk.py --server-bin "$BIN"

step "official TypeScript SDK and the dashboard in Chromium"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install Debian's chromium package (sudo apt-get install chromium)" >&2
    exit 1
  fi
fi
(cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/interop/node && EXECLAYER_BIN="$BIN" node --test)
