#!/usr/bin/env bash
# Runs the whole test suite (unit, integration and doc tests) of the workspace
# and ends with the totals over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# The real-model tests need ONNX Runtime: fetch it if it is not here. They
# skip loudly without it, unless BATCH_SERVING_REQUIRE_ORT=1 (CI) makes that
# a failure.
source scripts/ort-runtime.sh
if ort_runtime; then
    echo "ONNX Runtime: $ORT_DYLIB_PATH"
else
    echo "warning: no ONNX Runtime; the real-model tests will skip" >&2
fi
# The NATS tests need a real nats-server: found on PATH or fetched into
# .nats/ the same way. They skip loudly without one, unless
# BATCH_SERVING_REQUIRE_NATS=1 (CI) makes that a failure.
source scripts/nats-server.sh
if nats_server; then
    echo "nats-server: $NATS_SERVER"
else
    echo "warning: no nats-server; the NATS tests will skip" >&2
fi
# The metrics test lints a scrape with Prometheus's promtool, found or
# fetched from Debian's package; it skips loudly without one, unless
# BATCH_SERVING_REQUIRE_PROMTOOL=1 (CI).
source scripts/promtool.sh
if promtool_find; then
    echo "promtool: $PROMTOOL"
else
    echo "warning: no promtool; the /metrics lint will skip" >&2
fi
nats_python || echo "warning: no nats-py/msgpack; the Python client test will skip" >&2
# The Open Inference Protocol server is checked with real clients,
# tritonclient[http,grpc] and the KServe SDK; without them those tests skip
# loudly, unless BATCH_SERVING_REQUIRE_OIP_CLIENT=1 (CI).
source scripts/oip-client.sh
oip_python || echo "warning: no tritonclient or kserve; the Open Inference Protocol client tests will skip" >&2
# And with Triton's perf_analyzer 2.60, fetched into .tools/perf-analyzer
# with Debian 13's loader and libraries (it needs glibc 2.38).
source scripts/perf-analyzer.sh
perf_analyzer_find || echo "warning: no perf_analyzer; its test will skip" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-features 2>&1 | tee "$log"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
