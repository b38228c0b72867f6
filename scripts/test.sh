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
# The operator's tests run a real kube-apiserver (../shared/k8s), whose script needs these.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v xz >/dev/null 2>&1 || need_apt+=(xz-utils)
# The KEDA scaler's test regenerates its gRPC code from the vendored proto with protoc.
if [ -z "${PROTOC:-}" ] && ! command -v protoc >/dev/null 2>&1; then need_apt+=(protobuf-compiler); fi
# The web page of `graphscale serve` is tested in headless Chromium (scripts/test-page.sh).
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
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
# A real Kubernetes control plane on loopback for the operator's integration tests; stopped on
# exit, also when a test fails.
shared="${GRAPHSCALE_SHARED:-$(cd .. && pwd)/shared}"
k8s="$shared/k8s/start-apiserver.sh"
if [ ! -x "$k8s" ] && [ ! -f "$k8s" ]; then
  echo "the loopback control plane is missing: $k8s (set GRAPHSCALE_SHARED to the shared folder)" >&2
  exit 1
fi
export API_PORT="${API_PORT:-16443}" ETCD_PORT="${ETCD_PORT:-12379}"
stop_k8s() { FRESH=0 bash "$k8s" stop >/dev/null 2>&1 || true; }
trap stop_k8s EXIT
echo "== starting kube-apiserver on 127.0.0.1:$API_PORT"
FRESH=1 bash "$k8s" start
eval "$(bash "$k8s" env)"
export GRAPHSCALE_TEST_KUBECONFIG="$KUBECONFIG" GRAPHSCALE_REQUIRE_K8S=1
# protoc was installed above: its test must not skip.
export GRAPHSCALE_REQUIRE_PROTOC=1

# The recording and alert rules in deploy/prometheus: valid, and each alert fires on the series
# of its unit test and stays silent on healthy ones (promtool comes with Debian's prometheus).
promtool="${PROMTOOL:-$(command -v promtool || true)}"
if [ -z "$promtool" ] && [ -n "${PROMETHEUS:-}" ]; then promtool="$(dirname "$PROMETHEUS")/promtool"; fi
echo "== promtool check rules, promtool test rules"
"$promtool" check rules deploy/prometheus/rules.yaml deploy/prometheus/latency-rules.yaml
(cd deploy/prometheus && "$promtool" test rules rules.test.yaml)

echo "== cargo test (all features)"
cargo test --workspace --all-features --locked

# The web page in headless Chromium, on the binary the tests built (same features: no rebuild).
echo "== the web page in headless Chromium"
cargo build --workspace --all-features --locked --bins
bash scripts/test-page.sh
