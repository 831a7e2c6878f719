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
# from its kept corpus (read only; new finds go to a scratch folder). On by
# default in CI ($CI set); by hand EXECLAYER_FUZZ=1. The instrumented build
# runs on the nightly features of the stable toolchain (RUSTC_BOOTSTRAP=1).
# `cargo test` above already replays the kept corpus and every past finding
# (tests/suite/fuzz_corpus.rs), and that is what gates a change; an input this
# short run finds for the first time is new, not a regression of the change:
# it is printed and kept in fuzz/artifacts/ and the run goes on, unless
# EXECLAYER_FUZZ_STRICT=1. The long runs are recorded in SECURITY.md.
if [ -n "${EXECLAYER_FUZZ:-${CI:-}}" ]; then
  step "fuzzing (cargo-fuzz, ${EXECLAYER_FUZZ_SECS:-30} s a target from fuzz/corpus)"
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
  fi
  export RUSTC_BOOTSTRAP=1
  cargo fuzz build -O
  found=""
  for target in $(cargo fuzz list); do
    scratch=$(mktemp -d)
    if cargo fuzz run -O "$target" "$scratch" "fuzz/corpus/$target" --       -max_total_time="${EXECLAYER_FUZZ_SECS:-30}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$scratch.log" 2>&1; then
      tail -n 6 "$scratch.log"
    else
      grep -a -A 12 -m 1 "panicked at\|ERROR: " "$scratch.log" || tail -n 40 "$scratch.log"
      grep -a "Test unit written\|^Base64:" "$scratch.log" || true
      echo "fuzzing: $target found a NEW input that breaks an invariant (above; kept under fuzz/artifacts/$target/)." >&2
      echo "         Fix it and add the input to fuzz/regressions/$target/." >&2
      found="$found $target"
    fi
    rm -rf "$scratch" "$scratch.log"
  done
  unset RUSTC_BOOTSTRAP
  if [ -n "$found" ] && [ -n "${EXECLAYER_FUZZ_STRICT:-}" ]; then
    echo "fuzzing: new findings in:$found (EXECLAYER_FUZZ_STRICT is set)" >&2
    exit 1
  fi
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
