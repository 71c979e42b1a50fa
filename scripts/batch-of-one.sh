#!/usr/bin/env bash
# Whether a lone call costs what a batch of one costs (issue: "a batch of
# one"), measured three ways and written to docs/batch-of-one.md:
#   1. in process: load_test at 1 caller, a batch_size 16 serving against
#      a batch_size 1 serving on the same threads, interleaved;
#   2. over HTTP: two model_servers with default flags, one with
#      --batch-size 1, each at 1 client, interleaved;
#   3. over HTTP: model_server with default flags against a Python server
#      with no batching at all (benches/python/unbatched_server.py: FastAPI,
#      PIL, onnxruntime, the same model and threads), each at 1 client,
#      interleaved, where pip can install onnxruntime for it;
#   4. the image's decode and pre-processing on its own, against PIL
#      (decode, resize, crop and normalize, as a Python server does) where
#      python3 has PIL and numpy.
# BATCH_OF_ONE_SECONDS (default 3) sets the time per row.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ort-runtime.sh
if ! ort_runtime; then
    echo "batch-of-one: ONNX Runtime is not available (see above)" >&2
    exit 1
fi
bin=$(bash scripts/build-binaries.sh)
seconds=${BATCH_OF_ONE_SECONDS:-3}
out=${BATCH_OF_ONE_WRITE:-docs/batch-of-one.md}
work=$(mktemp -d)
trap 'kill $a $b 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/load_test" --concurrency 1,1,1,1,1,1 --seconds "$seconds" --markdown "$work/in-process.md"
"$bin/model_server" --addr 127.0.0.1:18500 --grpc-addr 127.0.0.1:18501 >/dev/null &
a=$!
"$bin/model_server" --addr 127.0.0.1:18502 --grpc-addr 127.0.0.1:18503 --batch-size 1 >/dev/null &
b=$!
for port in 18500 18502; do
    for _ in $(seq 150); do
        if curl -fs -o /dev/null "http://127.0.0.1:$port/health"; then break; fi
        sleep 0.2
    done
done
"$bin/load_test" --url 127.0.0.1:18500 --compare-url 127.0.0.1:18502 --concurrency 1,1,1,1,1,1 \
    --seconds "$seconds" --markdown "$work/http.md"
kill -INT $b
wait $b || true
# The Python peer: FastAPI, uvicorn, PIL and numpy come with the OIP
# clients' folder; onnxruntime for this python3 goes beside it.
source scripts/oip-client.sh
peer="(no Python peer: pip could not install onnxruntime, or the OIP clients' packages are missing)"
peers=.tools/python-peers
if oip_python && { PYTHONPATH="$peers:$PYTHONPATH" python3 -c "import onnxruntime" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --target "$peers" onnxruntime==1.31.1 >&2; }; then
    models=${BATCH_SERVING_MODELS:-../shared/models}
    model=$(ls "$models"/mobilenetv2*.onnx | head -1)
    PYTHONPATH="$peers:$PYTHONPATH" python3 benches/python/unbatched_server.py "$model" "$models/imagenet_classes.txt" 18504 "$(nproc)" &
    b=$!
    for _ in $(seq 150); do
        if curl -fs -o /dev/null "http://127.0.0.1:18504/health"; then break; fi
        sleep 0.2
    done
    "$bin/load_test" --url 127.0.0.1:18500 --compare-url 127.0.0.1:18504 --concurrency 1,1,1,1,1,1 \
        --seconds "$seconds" --markdown "$work/peer.md"
    kill $b
    wait $b || true
    peer=$(sed -n '3,$p' "$work/peer.md")
fi
kill -INT $a
wait $a || true
pil="(python3 with PIL and numpy not found: not measured)"
if oip_python; then
    image=$(ls "${BATCH_SERVING_MODELS:-../shared/models}"/dogs.jpg 2>/dev/null || true)
    if [[ -n "$image" ]]; then
        pil=$(PYTHONPATH="benches/python:$PYTHONPATH" python3 - "$image" <<'PY'
import statistics, sys, time
import PIL
from imagenet_input import prepare
data = open(sys.argv[1], "rb").read()
times = []
for _ in range(41):
    t = time.perf_counter(); prepare(data); times.append(time.perf_counter() - t)
print(f"PIL {PIL.__version__} took {statistics.median(times) * 1e3:.2f} ms (median of 41, one thread) for the same image: decode, resize to 256 on the short side (bilinear), centre crop to 224, normalize (benches/python/imagenet_input.py)")
PY
)
    fi
fi
{
    echo "# A batch of one"
    echo
    echo "Written by \`bash scripts/batch-of-one.sh\` on this machine ($(nproc) cores). The target: at one caller, a \`batch_size(16)\` serving answers at least 0.97x as many calls per second as a \`batch_size(1)\` serving on the same threads, in process and over HTTP; each row's last column is that ratio against the unbatched row of its round (six interleaved rounds), and the line under each table adds every round up."
    echo
    echo "## In process (load_test)"
    echo
    sed -n '3,$p' "$work/in-process.md"
    echo
    echo "## Over HTTP: model_server with default flags against model_server --batch-size 1"
    echo
    sed -n '3,$p' "$work/http.md"
    echo
    echo "## Over HTTP: model_server with default flags against a Python server with no batching at all"
    echo
    echo "The \`unbatched\` rows are benches/python/unbatched_server.py: FastAPI and uvicorn, PIL, onnxruntime's own session with the same threads, one request at a time."
    echo
    echo "$peer"
    echo
    echo "## Decoding and pre-processing, apart from the model"
    echo
    echo "$pil"
} > "$out"
echo "wrote $out"
