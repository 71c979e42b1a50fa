#!/usr/bin/env bash
# Packages the publishable crates as crates.io would receive them (each
# built from its own tarball), then builds a fresh binary crate that
# depends on the packaged core the way a `cargo add` user's would, and runs
# the first example of the core's README (its crates.io page) as main.rs.
# Exits non-zero when either fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# `cargo package --workspace` verifies each crate against its siblings
# through a temporary registry under target/package, and cargo keeps the
# sources it unpacks from a registry in its home, keyed by the registry's
# path and never unpacked again. A clone at the same path as an earlier one
# would verify batch-serving-nats against the earlier batch-serving (a CI
# run failed so, missing a function added since). Those unpacked copies of
# our own crates are dropped first; those from the public registry stay.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/batch-serving*-"$version"
cargo package --workspace --exclude batch-serving-examples --exclude batch-serving-benches "$@"
packaged="$root/target/package/batch-serving-$version"
[[ -f "$packaged/Cargo.toml" ]] || { echo "no unpacked package at $packaged" >&2; exit 1; }
for file in README.md LICENSE-MIT LICENSE-APACHE; do
    for crate in batch-serving batch-serving-ort batch-serving-nats; do
        tar -tzf "target/package/$crate-$version.crate" | grep -x "$crate-$version/$file" >/dev/null ||
            { echo "$crate-$version.crate lacks $file" >&2; exit 1; }
    done
done

user=$(mktemp -d)
trap 'rm -rf "$user"' EXIT
cargo new --quiet --bin --name readme-user "$user/readme-user"
cd "$user/readme-user"
cargo add --quiet --path "$packaged" batch-serving
cargo add --quiet tokio --features rt,macros
# The README's first Rust block, with rustdoc's hidden-line markers taken
# off: exactly what a reader copies, plus the main it hides.
python3 - "$packaged/README.md" src/main.rs <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = re.search(r"```rust[^\n]*\n(.*?)```", text, re.S).group(1)
lines = [re.sub(r"^# ?", "", l) if re.match(r"^#( |$)", l) else l for l in block.splitlines()]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
CARGO_TARGET_DIR="$root/target/readme-user" cargo run --quiet
echo "package check: the packaged crates verify, and the README's first example runs as a new user's main.rs"
