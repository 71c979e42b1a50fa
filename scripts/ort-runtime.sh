# Sourced by the README's commands: makes ONNX Runtime 1.31.1 available and
# exports ORT_DYLIB_PATH. It keeps a given ORT_DYLIB_PATH, else uses an
# installed onnxruntime Python package, else a copy cached in .ort/, else
# downloads PyPI's onnxruntime==1.31.1 wheel with pip and unpacks the library
# from it (ORT_PACKAGE=onnxruntime-gpu picks the CUDA build). It never exits
# the calling shell: on failure it prints what to do and returns 1.

ort_runtime() {
    local version=1.31.1 lib=libonnxruntime.so.1.31.1
    local root package=${ORT_PACKAGE:-onnxruntime}
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local cache="$root/.ort/$package-$version"

    if [[ -n "${ORT_DYLIB_PATH:-}" ]]; then
        [[ -f "$ORT_DYLIB_PATH" ]] && return 0
        echo "ORT_DYLIB_PATH=$ORT_DYLIB_PATH does not exist" >&2
        return 1
    fi
    local python
    for python in python3 python; do
        command -v "$python" >/dev/null || continue
        local found
        found=$("$python" -c "import importlib.util as u, os; s = u.find_spec('$package'.replace('-gpu', '')); print(os.path.join(os.path.dirname(s.origin), 'capi', '$lib') if s and s.origin else '')" 2>/dev/null || true)
        if [[ -n "$found" && -f "$found" ]]; then
            export ORT_DYLIB_PATH="$found"
            return 0
        fi
    done
    if [[ ! -f "$cache/$lib" ]]; then
        echo "fetching ONNX Runtime $version ($package wheel) into .ort/ ..." >&2
        local wheels="$root/.ort/wheels"
        mkdir -p "$wheels" "$cache"
        local pip=""
        for python in python3 python; do
            if command -v "$python" >/dev/null && "$python" -m pip --version >/dev/null 2>&1; then
                pip="$python -m pip"
                break
            fi
        done
        if [[ -z "$pip" ]]; then
            echo "cannot fetch ONNX Runtime: pip is not available. Install python3-pip, or download the $package==$version wheel yourself and set ORT_DYLIB_PATH to its onnxruntime/capi/$lib" >&2
            return 1
        fi
        # Any CPython wheel carries the same shared library, so ask for one
        # that exists whatever the local interpreter's version.
        if ! $pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" \
                --python-version 3.12 --platform "manylinux_2_28_$(uname -m)" "$package==$version" >&2; then
            echo "cannot download $package==$version with pip (no network or no package index?). Set ORT_DYLIB_PATH to an existing $lib" >&2
            return 1
        fi
        local wheel
        wheel=$(ls "$wheels"/"${package//-/_}"-"$version"-*.whl 2>/dev/null | head -n1)
        python3 - "$wheel" "$cache" <<'PY' || return 1
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("onnxruntime/capi/") and ".so" in name and "pybind" not in name:
            target = os.path.join(dest, os.path.basename(name))
            with z.open(name) as src, open(target, "wb") as out:
                out.write(src.read())
PY
    fi
    if [[ -f "$cache/$lib" ]]; then
        export ORT_DYLIB_PATH="$cache/$lib"
        return 0
    fi
    echo "ONNX Runtime library missing from $cache" >&2
    return 1
}
