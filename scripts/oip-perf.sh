#!/usr/bin/env bash
# Triton's perf_analyzer against the model server over HTTP and gRPC, at
# 1, 8, 32 and 128 concurrent requests, beside a bare ONNX Runtime loop on
# the same threads: builds the server and examples/src/bin/oip_perf.rs,
# fetches perf_analyzer (scripts/perf-analyzer.sh), and writes the table
# into docs/oip.md. Takes about five minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ort-runtime.sh
if ! ort_runtime; then
    echo "oip-perf: ONNX Runtime is not available (see above)" >&2
    exit 1
fi
source scripts/perf-analyzer.sh
if ! perf_analyzer_find; then
    echo "oip-perf: perf_analyzer is not available (see above)" >&2
    exit 1
fi
bin=$(bash scripts/build-binaries.sh)
"$bin/oip_perf" --server "$bin/model_server" --write "${OIP_PERF_WRITE:-docs/oip.md}" "$@"
