#!/usr/bin/env bash
# Installs SLURM (controller, node daemon, client tools) and MUNGE for advdf's
# local-cluster tests (tests/helpers/slurm.py, tests/test_slurm_harness.py).
#
# Idempotent: does nothing but the key check when everything is installed, so
# CI can call it unconditionally. Debian/Ubuntu only (apt-get); needs root or
# passwordless sudo when something is missing.
set -euo pipefail

# Daemons live in /usr/sbin, which is not on every user's PATH.
export PATH="${PATH}:/usr/sbin:/sbin"

# Every program the test harness or the submitit launcher runs.
required=(slurmctld slurmd sbatch srun squeue scancel scontrol sinfo munged munge)
packages=(slurmctld slurmd slurm-client munge)

CI_SCRIPT=slurm-install
source "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

missing=()
for program in "${required[@]}"; do
    command -v "$program" >/dev/null 2>&1 || missing+=("$program")
done

if [[ ${#missing[@]} -gt 0 ]]; then
    echo "slurm-install: missing ${missing[*]}; installing ${packages[*]}"
    run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # No recommends: they pull ~20 optional plugin packages (HDF5, InfluxDB,
    # ...) that the tests do not use; slurm-wlm-basic-plugins is a hard dependency.
    run_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${packages[@]}" >/dev/null
else
    echo "slurm-install: SLURM and MUNGE already installed"
fi

# The test harness generates its own MUNGE key, but a system munged (and
# anyone using the packaged service) needs /etc/munge/munge.key.
key=/etc/munge/munge.key
if ! run_as_root test -s "$key"; then
    echo "slurm-install: creating $key"
    run_as_root mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        run_as_root mungekey --create --keyfile="$key"
    elif command -v create-munge-key >/dev/null 2>&1; then
        run_as_root create-munge-key -f
    else
        run_as_root dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
    fi
    # munged rejects keys readable by anyone but the munge user.
    run_as_root chown munge:munge /etc/munge "$key"
    run_as_root chmod 0700 /etc/munge
    run_as_root chmod 0400 "$key"
fi

slurmctld -V
