#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, property, process-level), and the
# HTTP API fuzzed against its OpenAPI document (schemathesis, bounded in time).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== api fuzz (schemathesis)"
./scripts/api-fuzz.sh
