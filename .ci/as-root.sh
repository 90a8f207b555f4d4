# Sourced by the .ci install scripts: run_as_root runs a command as root (directly when root, else through
# passwordless sudo) or stops with one line naming the script ($CI_SCRIPT, set by the sourcing script).
if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo -n)
else
    as_root=(__no_root__)
fi

run_as_root() {
    if [[ "${as_root[*]:-}" == "__no_root__" ]]; then
        echo "${CI_SCRIPT}: need root (or sudo) to run: $*" >&2
        exit 1
    fi
    "${as_root[@]}" "$@"
}
