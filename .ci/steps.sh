# Timing for .ci/run: `step NAME COMMAND...` runs one step in this shell
# (so a step that sources a script sets the environment for later ones)
# and records its wall seconds; the table is printed when the run ends,
# passed or failed, so a slow or failing step is named either way.
_step_names=()
_step_secs=()
_step_started=$SECONDS

step() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "=== step: $name"
    _step_names+=("$name")
    _step_secs+=("…")
    "$@"
    _step_secs[${#_step_secs[@]}-1]=$((SECONDS - t0))
}

step_table() {
    local status=$?
    echo
    echo "| step | wall s |"
    echo "|---|---:|"
    local i
    for i in "${!_step_names[@]}"; do
        echo "| ${_step_names[$i]} | ${_step_secs[$i]} |"
    done
    echo "| total | $((SECONDS - _step_started)) |"
    return $status
}
trap step_table EXIT
