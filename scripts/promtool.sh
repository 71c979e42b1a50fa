# Sourced by the README's test command: makes Prometheus's `promtool`
# available for the test that lints a /metrics scrape, and exports PROMTOOL.
# It keeps a given PROMTOOL, else uses promtool on PATH, else a copy cached
# in .tools/, else downloads Debian's `prometheus` package with apt-get
# (no root needed: the package is only downloaded, never installed) and
# unpacks promtool from it. It never exits the calling shell: on failure
# it prints what to do and returns 1.

promtool_find() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local cache="$root/.tools/promtool"

    if [[ -n "${PROMTOOL:-}" ]]; then
        [[ -x "$PROMTOOL" ]] && return 0
        echo "PROMTOOL=$PROMTOOL is not an executable file" >&2
        return 1
    fi
    local found
    if found=$(command -v promtool 2>/dev/null); then
        export PROMTOOL="$found"
        return 0
    fi
    if [[ ! -x "$cache/promtool" ]]; then
        if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
            echo "cannot fetch promtool: no apt-get/dpkg-deb here. Install Prometheus's promtool, or set PROMTOOL" >&2
            return 1
        fi
        echo "fetching promtool (Debian's prometheus package) into .tools/ ..." >&2
        local work
        work=$(mktemp -d)
        if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
            rm -rf "$work"
            echo "cannot download Debian's prometheus package (no network, or no package lists: try apt-get update). Install promtool or set PROMTOOL" >&2
            return 1
        fi
        mkdir -p "$cache"
        dpkg-deb -x "$work"/prometheus_*.deb "$work/unpacked" &&
            cp "$work/unpacked/usr/bin/promtool" "$cache/promtool"
        rm -rf "$work"
    fi
    if [[ -x "$cache/promtool" ]]; then
        export PROMTOOL="$cache/promtool"
        return 0
    fi
    echo "promtool missing from $cache" >&2
    return 1
}
