#!/usr/bin/env bash
# Runs graphscale's whole test suite on a fresh machine: installs what the tests need when it is
# missing, then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v git >/dev/null 2>&1 || need_apt+=(git)
# The monitor's tests run a real Prometheus on loopback.
if [ -z "${PROMETHEUS:-}" ] && ! command -v prometheus >/dev/null 2>&1; then need_apt+=(prometheus); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) and re-run" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
# One feature set for lints and tests (every feature: Prophet's WASM Stan model, the neural
# models), so each dependency is compiled once per profile.
echo "== cargo clippy (all features)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# The forecast crate's default build (no Prophet) has code of its own: lint it too.
cargo clippy -p graphscale-forecast --all-targets --locked -- -D warnings
echo "== cargo test (all features)"
cargo test --workspace --all-features --locked
