#!/usr/bin/env bash
# The README's demo: MobileNetV2 served with batching under concurrent load.
# Fetches ONNX Runtime if needed, finds the model (the shared folder,
# BATCH_SERVING_MODELS, or the model zoo download), then
#   1. classifies the sample photos with the `classify` CLI,
#   2. runs the in-process load test, batched against unbatched,
#   3. starts the model server (HTTP and gRPC), sends /v1/classify load
#      over HTTP, asks /v1/embed, points the ecosystem's own clients at it
#      unchanged (tritonclient over HTTP and gRPC, the KServe SDK over REST
#      and gRPC, perf_analyzer over HTTP and gRPC) where they can be
#      fetched, and stops it with Ctrl-C (SIGINT) to show the graceful
#      drain,
#   4. where the MiniLM files are there too, indexes the paragraphs of the
#      repository's docs with sentence embeddings and answers a question
#      from them,
#   5. where a NATS server is found or fetched, serves MobileNet on three
#      node processes through NATS under load, and kills one midway.
# DEMO_SECONDS (default 3) sets the time per load-test row.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ort-runtime.sh
if ! ort_runtime; then
    echo "demo: ONNX Runtime is not available (see above)" >&2
    exit 1
fi
echo "ONNX Runtime: $ORT_DYLIB_PATH"

models=${BATCH_SERVING_MODELS:-}
if [[ -z "$models" ]]; then
    for dir in ../shared/models shared/models .models; do
        if [[ -f "$dir/imagenet_classes.txt" ]]; then models=$dir; break; fi
    done
fi
if [[ -z "$models" ]]; then
    echo "no models folder found; trying to download the model zoo's mobilenetv2-12.onnx" >&2
    bash scripts/fetch-model.sh
    models=.models
fi
export BATCH_SERVING_MODELS=$(cd "$models" && pwd)
echo "models: $BATCH_SERVING_MODELS"
seconds=${DEMO_SECONDS:-3}

bin=$(bash scripts/build-binaries.sh)

echo; echo "== 1. classify the sample photos =="
shopt -s nullglob
samples=("$BATCH_SERVING_MODELS"/*.jpg "$BATCH_SERVING_MODELS"/*.png)
if (( ${#samples[@]} )); then
    "$bin/examples/classify" "${samples[@]}"
else
    echo "(no sample photos in $BATCH_SERVING_MODELS; skipping)"
fi

echo; echo "== 2. in-process load: batched against unbatched =="
"$bin/load_test" --concurrency 1,8,32 --seconds "$seconds"

echo; echo "== 3. the model server: /v1/classify under load, /v1/embed, and the ecosystem's clients over HTTP and gRPC =="
port=${DEMO_PORT:-18000}
grpc_port=${DEMO_GRPC_PORT:-18001}
# Default flags: only the addresses are given.
"$bin/model_server" --addr "127.0.0.1:$port" --grpc-addr "127.0.0.1:$grpc_port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
"$bin/load_test" --url "127.0.0.1:$port" --concurrency 16 --seconds "$seconds"
if [[ -f "$BATCH_SERVING_MODELS/minilm/tokenizer.json" ]]; then
    # Read the whole answer before cutting it short: `curl | head -c` fails
    # under pipefail whenever head closes the pipe before curl is done.
    embedding=$(curl -fsS -H 'content-type: application/json' -d '["A man is eating food."]' "http://127.0.0.1:$port/v1/embed")
    echo "${embedding:0:120} ... (${#embedding} bytes)"
fi
curl -fsS "http://127.0.0.1:$port/v2/models/mobilenet"; echo
source scripts/oip-client.sh
if oip_python && [[ -f "$BATCH_SERVING_MODELS/cat.jpg" ]]; then
    python3 examples/tests/python/oip_client.py "127.0.0.1:$port" "$BATCH_SERVING_MODELS/cat.jpg" "127.0.0.1:$grpc_port"
    python3 examples/tests/python/kserve_client.py "127.0.0.1:$port" "127.0.0.1:$grpc_port"
else
    echo "(no tritonclient and kserve, or no cat.jpg; skipping those clients)"
fi
source scripts/perf-analyzer.sh
if perf_analyzer_find; then
    for target in "http 127.0.0.1:$port" "grpc 127.0.0.1:$grpc_port"; do
        set -- $target
        echo "perf_analyzer over $1, 1 and 128 concurrent requests:"
        "$PERF_ANALYZER" -m mobilenet -i "$1" -u "$2" --concurrency-range 1:128:127 \
            --measurement-mode count_windows --measurement-request-count 32 --stability-percentage 1000 --max-trials 3 |
            grep -E '^Concurrency|Successful request count'
    done
else
    echo "(no perf_analyzer; skipping it)"
fi
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^batch_serving_(batches_total|items_total)' || true
kill -INT $server
wait $server
trap - EXIT

echo; echo "== 4. sentence embeddings: the docs of this repository asked a question =="
if [[ -f "$BATCH_SERVING_MODELS/minilm/tokenizer.json" ]]; then
    out=$(mktemp)
    # The repository's own docs, a paragraph per document, asked a question
    # that one of them answers.
    "$bin/embed_index" --docs README.md docs/*.md --out "$out" --query "what happens to queued calls at shutdown?" --top-k 3
    rm -f "$out"
else
    echo "(no minilm/ folder in $BATCH_SERVING_MODELS; skipping: docs/embeddings.md says how to get it)"
fi
echo; echo "== 5. one serving on three nodes through NATS, one killed midway =="
source scripts/nats-server.sh
if nats_server; then
    "$bin/cluster" --seconds $(( seconds * 2 )) --concurrency 16 --batch-size 8
else
    echo "(no nats-server and none could be fetched; skipping: put nats-server on PATH or set NATS_SERVER)"
fi
echo; echo "demo finished"
