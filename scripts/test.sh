#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test.
# Installs what the tests need when it is missing (a fresh machine has only
# the Rust toolchain, Node/npm, Python 3 and apt).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
