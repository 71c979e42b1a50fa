#!/usr/bin/env bash
# Builds the binaries the demo, the soaks and the overload test run, with ONE
# cargo command, and prints the folder they are in. Cargo resolves features
# per selection of packages and targets, so `-p A` then `-p B` builds their
# shared dependencies twice when the features differ; one selection builds
# them once, and a second call is a no-op.
#
# BATCH_SERVING_PROFILE picks the profile: `release` (the default), or `dev`
# to reuse the README's test command's build, as CI does. With `dev` the
# selection is that build's own (every feature, every example), so nothing
# is compiled twice; with `release` it is only what the demo runs.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${BATCH_SERVING_PROFILE:-release}
case "$profile" in
    release)
        cargo build --release --quiet --workspace --bins --example classify >&2
        echo target/release
        ;;
    dev)
        cargo build --quiet --workspace --all-features --bins --examples >&2
        echo target/debug
        ;;
    *)
        echo "BATCH_SERVING_PROFILE must be release or dev, not $profile" >&2
        exit 2
        ;;
esac
