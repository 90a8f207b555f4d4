"""A throwaway single-node SLURM cluster on localhost for integration tests.

advdf sweeps attacks and evaluations over SLURM through Hydra's submitit
launcher. To test that path for real (sbatch, job arrays, srun, result
pickles) the tests start a private cluster made of ``munged``,
``slurmctld`` and ``slurmd``, submit jobs to it and tear it down again.

Everything the cluster owns lives in two places:

* ``workdir`` (given by the caller, usually a pytest ``tmp_path``) holds
  ``slurm.conf`` and the daemon logs, so they survive for debugging.
* A short private runtime directory under ``/tmp`` holds the MUNGE key and
  socket, the SLURM state and spool directories and the PID files. It is
  short because SLURM and MUNGE create UNIX sockets there (108-byte path
  limit), and it sits outside ``workdir`` because the ``munge`` user must be
  able to traverse it while pytest's temp directories are root-only (0700).

The daemons use their own MUNGE socket and free TCP ports, so a system
``munged``/``slurmctld`` or leftovers of an earlier run do not interfere.
On exit every daemon is stopped by the PID this module started it with.

Typical use::

    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with local_slurm_cluster(tmp_path / "slurm") as cluster:
        subprocess.run(
            [sys.executable, "attack.py", "--multirun",
             *cluster.launcher_overrides(), "attack.eps=1,2"],
            env=cluster.env, check=True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Root of the advdf checkout (``tests/helpers/slurm.py`` -> repo)."""

CONF_DIR = REPO_ROOT / "conf"
"""advdf's Hydra config dir; holds ``hydra/launcher/slurm*.yaml``."""

PARTITION = "debug"
"""Name of the only partition of the local cluster."""

REQUEUE_DELAY_S = 5
"""Seconds a requeued job waits before it may start again (``cred_expire``)."""

# Programs the harness launches or the submitit launcher calls.
_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("munge", "sinfo", "sbatch", "squeue", "scancel", "scontrol", "srun")

# Daemons live in /usr/sbin, which is not on every PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])

_LOG_TAIL_LINES = 40


class SlurmClusterError(RuntimeError):
    """The local SLURM cluster could not be started."""


@dataclasses.dataclass(frozen=True)
class LocalSlurmCluster:
    """Handle on a running local cluster, yielded by ``local_slurm_cluster``.

    Attributes:
        env: Copy of ``os.environ`` with ``SLURM_CONF`` (and the sbin dirs on
            ``PATH``) set; pass it to every process that talks to the cluster.
            Jobs inherit it through sbatch's default ``--export=ALL``.
        partition: The partition jobs must be submitted to.
        conf_path: The generated ``slurm.conf``.
        workdir: Directory with ``slurm.conf`` and the daemon logs.
        pids: PIDs of the daemons this cluster started, by daemon name.
    """

    env: dict[str, str]
    partition: str
    conf_path: Path
    workdir: Path
    pids: dict[str, int]

    def launcher_overrides(
        self,
        launcher: str = "slurm_cpu",
        searchpath: Path | None = CONF_DIR,
        timeout_min: int = 5,
    ) -> list[str]:
        """Hydra overrides that send a ``--multirun`` sweep to this cluster.

        They do not depend on the app's ``--config-dir``: the launcher config
        is found through ``hydra.searchpath``.

        Args:
            launcher: Name of a config in ``conf/hydra/launcher/``.
            searchpath: Config dir holding ``hydra/launcher/<launcher>.yaml``
                to add to Hydra's search path; ``None`` when the app's own
                config dir already contains it (e.g. advdf's ``conf/``).
            timeout_min: SLURM time limit per job, kept short so that a hung
                job cannot block the test suite for the default four hours.

        Returns:
            Override strings to append to the sweep's command line.
        """
        overrides = []
        if searchpath is not None:
            overrides.append(f"hydra.searchpath=[file://{searchpath}]")
        overrides += [
            f"hydra/launcher={launcher}",
            f"hydra.launcher.partition={self.partition}",
            f"hydra.launcher.timeout_min={timeout_min}",
        ]
        return overrides

    def job_state(self, job_id: str) -> str | None:
        """State of a job as ``scontrol`` reports it (e.g. ``COMPLETED``).

        Accounting is disabled on this cluster, so ``sacct`` cannot answer;
        ``scontrol`` remembers finished jobs for ``MinJobAge`` seconds.

        Args:
            job_id: SLURM job id, e.g. ``"12"`` or ``"11_0"``.

        Returns:
            The ``JobState`` field, or ``None`` if SLURM does not know the job.
        """
        proc = subprocess.run(
            [_which("scontrol"), "show", "job", "--oneliner", job_id],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if proc.returncode != 0:
            return None
        for field in proc.stdout.split():
            if field.startswith("JobState="):
                return field.removeprefix("JobState=")
        return None


def slurm_unavailable_reason() -> str | None:
    """Says why ``local_slurm_cluster`` cannot run here, if it cannot.

    Returns:
        A human-readable reason suitable for ``pytest.skip``, or ``None`` if
        the cluster can be started.
    """
    if not sys.platform.startswith("linux"):
        return f"a local SLURM cluster needs Linux, not {sys.platform}"
    if os.geteuid() != 0:
        # slurmd must run as root to launch jobs; munged must be started as
        # root to drop privileges to the munge user.
        return "not root: slurmd and munged must be started as root"
    for program in (*_DAEMONS, *_CLIENTS):
        if shutil.which(program, path=_SEARCH_PATH) is None:
            return f"{program} is not installed (run .ci/slurm-install.sh)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "user 'munge' does not exist (install the munge package)"
    return None


@contextlib.contextmanager
def local_slurm_cluster(workdir: Path, startup_timeout_s: float = 30.0) -> Iterator[LocalSlurmCluster]:
    """Runs a single-node SLURM cluster for the duration of the block.

    Args:
        workdir: Directory for ``slurm.conf`` and the daemon logs; created if
            missing. Reusing one across runs is fine (logs are appended).
        startup_timeout_s: How long to wait for the node to become idle.

    Yields:
        The running cluster; see ``LocalSlurmCluster``.

    Raises:
        SlurmClusterError: SLURM is unavailable (see
            ``slurm_unavailable_reason``) or a daemon did not come up in time;
            the message includes the tails of the daemon logs.
    """
    reason = slurm_unavailable_reason()
    if reason is not None:
        raise SlurmClusterError(reason)

    workdir = Path(workdir).resolve()
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    # Explicitly /tmp: TMPDIR may point somewhere the munge user cannot reach
    # or whose path is too long for a UNIX socket.
    runtime_dir = Path(tempfile.mkdtemp(prefix="advdf-slurm-", dir="/tmp"))
    # mkdtemp makes it 0700; munged (user munge) must traverse it.
    os.chmod(runtime_dir, 0o755)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    munge_dir = runtime_dir / "munge"
    env = _cluster_env(workdir / "slurm.conf")
    try:
        munge_socket = _start_munged(munge_dir, log_dir, procs)
        ctld_port = _free_port()
        conf_path = _write_slurm_conf(workdir, runtime_dir, log_dir, munge_socket, ctld_port)
        for daemon in ("slurmctld", "slurmd"):
            cmd = [_which(daemon), "-D", "-f", str(conf_path)]
            if daemon == "slurmd":
                cmd += ["-N", _node_name()]
            procs[daemon] = _spawn(daemon, cmd, log_dir, env)
        deadline = time.monotonic() + startup_timeout_s
        _wait_for_controller(ctld_port, procs, log_dir, deadline)
        _wait_for_idle_node(env, procs, log_dir, deadline)
        yield LocalSlurmCluster(
            env=env,
            partition=PARTITION,
            conf_path=conf_path,
            workdir=workdir,
            pids={name: proc.pid for name, proc in procs.items()},
        )
    finally:
        ctld_alive = "slurmctld" in procs and procs["slurmctld"].poll() is None
        if ctld_alive:
            _cancel_all_jobs(env)
        # Reverse start order: slurmd needs slurmctld to deregister cleanly
        # and both need munged until they are down.
        for name in reversed(list(procs)):
            # Without a controller slurmd spends its MessageTimeout (10 s)
            # trying to deregister; there is nothing to deregister from.
            _stop(procs[name], grace_s=10.0 if ctld_alive or name != "slurmd" else 1.0)
        shutil.rmtree(runtime_dir, ignore_errors=True)


def _which(program: str) -> str:
    """Absolute path of ``program``, also searching the sbin directories."""
    path = shutil.which(program, path=_SEARCH_PATH)
    if path is None:
        raise SlurmClusterError(f"{program} is not installed")
    return path


def _node_name() -> str:
    """Short host name; slurmd registers under it by default."""
    return socket.gethostname().split(".")[0]


def _cluster_env(conf_path: Path) -> dict[str, str]:
    """Environment for processes talking to the cluster."""
    env = dict(os.environ)
    env["SLURM_CONF"] = str(conf_path)
    env["PATH"] = _SEARCH_PATH
    # Settings inherited from an enclosing SLURM job would redirect clients.
    for key in list(env):
        if key.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) and key != "SLURM_CONF":
            del env[key]
    return env


def _free_port() -> int:
    """A TCP port that is free right now, so concurrent clusters never clash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(
    name: str,
    cmd: list[str],
    log_dir: Path,
    env: dict[str, str],
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Starts a daemon in the foreground in its own session.

    Its own session keeps a Ctrl-C in the terminal from reaching it directly,
    so shutdown always goes through ``_stop`` in a defined order.
    """
    with open(log_dir / f"{name}.out", "ab") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )


def _start_munged(munge_dir: Path, log_dir: Path, procs: dict[str, subprocess.Popen[bytes]]) -> Path:
    """Starts a private munged and returns its socket path.

    A private key and socket make the cluster independent of any system
    munged and of /etc/munge/munge.key (which may be missing or unreadable).
    munged refuses keys and directories that others can write or read, so
    the permissions below are the ones it requires.
    """
    munge_user = pwd.getpwnam("munge")
    munge_dir.mkdir(mode=0o755)
    # Clients (root here) need to reach the socket, hence 0755 on the dir.
    os.chmod(munge_dir, 0o755)
    key_path = munge_dir / "munge.key"
    key_path.write_bytes(os.urandom(1024))
    os.chmod(key_path, 0o400)
    for path in (munge_dir, key_path):
        os.chown(path, munge_user.pw_uid, munge_user.pw_gid)

    socket_path = munge_dir / "munge.socket"
    cmd = [
        _which("munged"),
        "--foreground",
        f"--socket={socket_path}",
        f"--key-file={key_path}",
        f"--pid-file={munge_dir / 'munged.pid'}",
        # Foreground munged logs to stderr (munged.out); the flag only keeps
        # it away from /var/log/munge.
        f"--log-file={munge_dir / 'munged.log'}",
        f"--seed-file={munge_dir / 'munged.seed'}",
    ]
    procs["munged"] = _spawn("munged", cmd, log_dir, dict(os.environ), user="munge")

    deadline = time.monotonic() + 10.0
    while True:
        if procs["munged"].poll() is not None:
            raise SlurmClusterError(
                f"munged exited with status {procs['munged'].returncode}\n{_log_tails(log_dir)}"
            )
        probe = subprocess.run(
            [_which("munge"), "--no-input", f"--socket={socket_path}"],
            capture_output=True,
            check=False,
            timeout=10,
        )
        if probe.returncode == 0:
            return socket_path
        if time.monotonic() > deadline:
            raise SlurmClusterError(f"munged did not answer on its socket within 10 s\n{_log_tails(log_dir)}")
        time.sleep(0.2)


def _write_slurm_conf(
    workdir: Path, runtime_dir: Path, log_dir: Path, munge_socket: Path, ctld_port: int
) -> Path:
    """Writes ``slurm.conf`` for a one-node cluster and returns its path."""
    state_dir = runtime_dir / "state"
    spool_dir = runtime_dir / "spool"
    state_dir.mkdir()
    spool_dir.mkdir()
    node = _node_name()
    cpus = len(os.sched_getaffinity(0))
    # Half the RAM: slurmd must find at least RealMemory MB, and jobs asking
    # for --mem above RealMemory are rejected at submission.
    real_memory_mb = max(_mem_total_mb() // 2, 1)
    lines = [
        "# Generated by advdf tests/helpers/slurm.py; throwaway test cluster.",
        "ClusterName=advdf-local",
        # Explicit address: the host name may not resolve, or resolve to a
        # non-loopback interface, on CI machines.
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # Used by both auth/munge and cred/munge. cred_expire (seconds, at
        # least 5) is also how long a requeued job waits before it may start
        # again: 120 s by default, too long for the requeue tests.
        f"AuthInfo=socket={munge_socket},cred_expire={REQUEUE_DELAY_S}",
        f"StateSaveLocation={state_dir}",
        f"SlurmdSpoolDir={spool_dir}",
        f"SlurmctldPidFile={runtime_dir / 'slurmctld.pid'}",
        f"SlurmdPidFile={runtime_dir / 'slurmd.pid'}",
        f"SlurmctldLogFile={log_dir / 'slurmctld.log'}",
        f"SlurmdLogFile={log_dir / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # No cgroups: they are unavailable in most containers and CI runners.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        # Test pending jobs every second rather than every 30-60 s: a requeued
        # job starts as soon as its requeue delay is over.
        "SchedulerParameters=sched_interval=1,bf_interval=1",
        # Schedule single CPUs rather than whole cores so that two 1-CPU jobs
        # run side by side on a 2-vCPU (1 core x 2 threads) machine.
        "SelectTypeParameters=CR_CPU_Memory",
        # Trust the node line below instead of draining the node when the
        # detected sockets/cores/threads layout differs from it.
        "SlurmdParameters=config_overrides",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "MailProg=/bin/true",
        # Fast cancellation at teardown.
        "KillWait=2",
        # Keep finished jobs queryable with scontrol (no accounting).
        "MinJobAge=600",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf_path = workdir / "slurm.conf"
    conf_path.write_text("\n".join(lines) + "\n")
    return conf_path


def _mem_total_mb() -> int:
    """Total RAM in MB, from /proc/meminfo."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmClusterError("MemTotal missing from /proc/meminfo")


def _check_alive(procs: dict[str, subprocess.Popen[bytes]], log_dir: Path) -> None:
    """Raises with the log tails if any daemon has already exited."""
    for name, proc in procs.items():
        if proc.poll() is not None:
            raise SlurmClusterError(
                f"{name} exited with status {proc.returncode} during startup\n{_log_tails(log_dir)}"
            )


def _wait_for_controller(
    port: int, procs: dict[str, subprocess.Popen[bytes]], log_dir: Path, deadline: float
) -> None:
    """Blocks until slurmctld accepts TCP connections.

    Checked before any SLURM client runs because clients retry an absent
    controller for ``MessageTimeout`` (10 s), which would delay noticing a
    daemon that died at startup.
    """
    while time.monotonic() < deadline:
        _check_alive(procs, log_dir)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SlurmClusterError(f"slurmctld not listening on port {port}\n{_log_tails(log_dir)}")


def _wait_for_idle_node(
    env: dict[str, str],
    procs: dict[str, subprocess.Popen[bytes]],
    log_dir: Path,
    deadline: float,
) -> None:
    """Blocks until sinfo reports the node idle; fails fast if a daemon dies."""
    cmd = [_which("sinfo"), "--noheader", "--Node", "--format=%N %t"]
    last = ""
    while time.monotonic() < deadline:
        _check_alive(procs, log_dir)
        try:
            sinfo = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=15)
        except subprocess.TimeoutExpired:
            last = "sinfo timed out"
            continue
        last = (sinfo.stdout + sinfo.stderr).strip()
        if sinfo.returncode == 0 and any(line.split()[1:] == ["idle"] for line in sinfo.stdout.splitlines()):
            return
        time.sleep(0.5)
    raise SlurmClusterError(f"node not idle in time; last sinfo output: {last!r}\n{_log_tails(log_dir)}")


def _cancel_all_jobs(env: dict[str, str], timeout_s: float = 15.0) -> None:
    """Cancels every job and waits for them to leave the queue.

    slurmstepd processes outlive slurmd by design, so jobs still running at
    teardown would otherwise be left behind.
    """
    squeue = [_which("squeue"), "--noheader", "--format=%i", f"--partition={PARTITION}"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc = subprocess.run(squeue, env=env, capture_output=True, text=True, check=False, timeout=10)
        if proc.returncode != 0:
            return  # slurmctld is gone; nothing left to ask.
        job_ids = proc.stdout.split()
        if not job_ids:
            return
        subprocess.run(
            [_which("scancel"), "--full", *job_ids],
            env=env,
            capture_output=True,
            check=False,
            timeout=10,
        )
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Stops a daemon by PID: SIGTERM, then SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


def _log_tails(log_dir: Path) -> str:
    """The last lines each daemon wrote to stderr, for error messages.

    In the foreground (``-D``/``--foreground``) the daemons log to stderr as
    well as to their log files, and stderr also catches errors from before a
    log file is opened.
    """
    parts = []
    for out in sorted(log_dir.glob("*.out")):
        lines = out.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        parts.append(f"--- {out} ---\n" + "\n".join(lines))
    return "\n".join(parts) if parts else f"(no daemon output in {log_dir})"
