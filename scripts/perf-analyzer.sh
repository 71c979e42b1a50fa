# Sourced by the README's test command and the demo: makes Triton's
# perf_analyzer 2.60 (the Open Inference Protocol's standard load tool)
# available and exports PERF_ANALYZER, the command to run it. It keeps a
# given PERF_ANALYZER, else uses a copy cached in .tools/perf-analyzer,
# else fetches one there:
# - the binary from PyPI's perf-analyzer==2.60.0 wheel (pip download: the
#   wheel is only unpacked, nothing is installed);
# - because that binary needs glibc 2.38 and a newer libstdc++ than Debian
#   12 ships, Debian 13's own loader, libc6, libstdc++6 and libgcc-s1,
#   downloaded with apt-get from private package lists (nothing is
#   installed, the system's lists are untouched) and unpacked beside it.
# The exported command is a wrapper that runs the binary under that loader,
# with the private libraries first and the system's after (libssl, libz).
# It never exits the calling shell: on failure it prints why and returns 1.

perf_analyzer_find() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local cache="$root/.tools/perf-analyzer"
    local wrapper="$cache/perf_analyzer"

    if [[ -n "${PERF_ANALYZER:-}" ]]; then
        [[ -x "$PERF_ANALYZER" ]] && return 0
        echo "PERF_ANALYZER=$PERF_ANALYZER is not an executable file" >&2
        return 1
    fi
    if [[ ! -x "$wrapper" ]] || ! "$wrapper" --version >/dev/null 2>&1; then
        if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null || ! command -v unzip >/dev/null; then
            echo "cannot fetch perf_analyzer: it needs apt-get, dpkg-deb and unzip. Set PERF_ANALYZER to a perf_analyzer that runs here" >&2
            return 1
        fi
        echo "fetching perf_analyzer 2.60 and Debian 13's glibc and libstdc++ into .tools/perf-analyzer ..." >&2
        local work
        work=$(mktemp -d)
        if ! _perf_analyzer_fetch "$work" "$cache"; then
            rm -rf "$work"
            return 1
        fi
        rm -rf "$work"
    fi
    if "$wrapper" --version >/dev/null 2>&1; then
        export PERF_ANALYZER="$wrapper"
        return 0
    fi
    echo "perf_analyzer in $cache does not run here" >&2
    return 1
}

# Fetches into $2, working in $1.
_perf_analyzer_fetch() {
    local work=$1 cache=$2
    if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform manylinux_2_38_x86_64 --python-version 3.11 perf-analyzer==2.60.0 -d "$work/wheel" >/dev/null 2>&1; then
        echo "cannot download the perf-analyzer 2.60.0 wheel with pip (no network?). Set PERF_ANALYZER to a perf_analyzer that runs here" >&2
        return 1
    fi
    local apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
        -o APT::Sandbox::User=root)
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$work/sources.list"
    if ! apt-get "${apt[@]}" update >/dev/null 2>&1 ||
        ! (cd "$work/debs" && apt-get "${apt[@]}" download libc6 libstdc++6 libgcc-s1 >/dev/null 2>&1); then
        echo "cannot download Debian 13's libc6, libstdc++6 and libgcc-s1 (no network, or no Debian archive keyring). Set PERF_ANALYZER to a perf_analyzer that runs here" >&2
        return 1
    fi
    rm -rf "$cache"
    mkdir -p "$cache/root"
    local deb
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -x "$deb" "$cache/root" || return 1
    done
    unzip -q -o "$work"/wheel/perf_analyzer-*.whl 'perf_analyzer/bin/perf_analyzer' -d "$cache/wheel" || return 1
    chmod +x "$cache/wheel/perf_analyzer/bin/perf_analyzer"
    cat > "$cache/perf_analyzer" <<'WRAPPER'
#!/bin/sh
# perf_analyzer 2.60 under Debian 13's loader and libraries (see scripts/perf-analyzer.sh).
here=$(dirname "$(readlink -f "$0")")
lib="$here/root/usr/lib/x86_64-linux-gnu"
exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib" "$here/wheel/perf_analyzer/bin/perf_analyzer" "$@"
WRAPPER
    chmod +x "$cache/perf_analyzer"
}
