# Sourced by the README's test command: the Open Inference Protocol tests'
# Python clients, NVIDIA's tritonclient[http,grpc] 2.73 and the KServe SDK
# 0.21 (real KServe v2 clients), with pillow to read the photo, installed
# into .tools/python once; exports PYTHONPATH to include it. Returns 1 with
# a message when pip cannot install them.
oip_python() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local target="$root/.tools/python"
    if ! PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" python3 -c "import tritonclient.http, PIL, numpy" 2>/dev/null \
        || ! PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" python3 -c "import kserve" 2>/dev/null; then
        echo "installing tritonclient[http,grpc], kserve and pillow into .tools/python ..." >&2
        if ! python3 -m pip install --quiet --disable-pip-version-check --target "$target" "tritonclient[http,grpc]==2.73.0" "kserve==0.21.0" "pillow==13.0.0" >&2 2>/dev/null; then
            echo "cannot install tritonclient[http,grpc], kserve and pillow with pip; the Open Inference Protocol client tests will skip" >&2
            return 1
        fi
    fi
    export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
}
