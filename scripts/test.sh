#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, property, process-level), the
# README's quick-start commands run as written against `concord demo` (ports 7700-7705 must be
# free), and the HTTP API fuzzed against its OpenAPI document (schemathesis, bounded in time).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== README quick start (against concord demo on localhost:7700)"
./scripts/readme-quickstart.py
echo "== api fuzz (schemathesis)"
./scripts/api-fuzz.sh
