#!/usr/bin/env bash
# The model server's MobileNet route (/v1/classify) under overload and bad input, end to end: builds the
# server and examples/src/bin/overload_test.rs, which starts the server with
# a queue of 8, measures good answers/s unloaded and under 200 clients, sends
# the bad-input barrage, stops it with SIGINT while a half-sent request is
# open, and writes the figures into docs/reliability.md.
# OVERLOAD_SECONDS (default 5) sets the time per load phase.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ort-runtime.sh
if ! ort_runtime; then
    echo "overload: ONNX Runtime is not available (see above)" >&2
    exit 1
fi
bin=$(bash scripts/build-binaries.sh)
"$bin/overload_test" --server "$bin/model_server" \
    --seconds "${OVERLOAD_SECONDS:-5}" --write "${OVERLOAD_WRITE:-docs/reliability.md}" "$@"
