"""A single-node SLURM (Debian's slurm-wlm, munge; optionally slurmdbd on a private MariaDB)
started for a test and stopped by PID, with one GPU declared through gres.conf.

Needs root: slurm.conf must be /etc/slurm/slurm.conf (jobs' inner srun ignores SLURM_CONF).
Whatever was in /etc/slurm before is put back on stopping; daemons write only under `folder`
(and munge under /run/munge, removed again when the test created it).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ETC = Path("/etc/slurm")
MUNGE_RUN = Path("/run/munge")
PACKAGES = {"slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "munged": "munge"}
ACCOUNTING_PACKAGES = {"slurmdbd": "slurmdbd", "mariadbd": "mariadb-server"}
CLUSTER = "ecg2abp"
PARTITION = "main"


def missing_packages(accounting: bool) -> list[str]:
    """Debian packages whose programs are not installed."""
    wanted = {**PACKAGES, **(ACCOUNTING_PACKAGES if accounting else {})}
    return sorted({package for program, package in wanted.items() if not find(program)})


def find(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not ready within {timeout:.0f} s")


def succeeds(*command: str) -> bool:
    return subprocess.run(command, capture_output=True, timeout=30).returncode == 0


class SlurmCluster:
    """Start with `start()`, always `stop()` (it kills only the daemons it started)."""

    def __init__(self, folder: Path, *, accounting: bool) -> None:
        self.folder = folder
        self.accounting = accounting
        self.host = socket.gethostname().split(".")[0]
        self.daemons: list[tuple[subprocess.Popen, object]] = []  # process, its log file
        self.saved_etc = folder / "etc-slurm-before"
        self.etc_existed = ETC.exists()
        self.made_munge_run = False

    # --- life cycle -----------------------------------------------------------------------------

    def start(self) -> "SlurmCluster":
        for sub in ("state", "spool", "logs"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        if self.etc_existed:
            shutil.copytree(ETC, self.saved_etc, symlinks=True)
        ETC.mkdir(parents=True, exist_ok=True)
        self._start_munge()
        if self.accounting:
            self._start_database()
        self._write_configs()
        if self.accounting:
            self._spawn("slurmdbd", [find("slurmdbd"), "-D"])
            wait_until(lambda: succeeds("sacctmgr", "-n", "list", "cluster"), "slurmdbd")
            subprocess.run(["sacctmgr", "-i", "add", "cluster", CLUSTER], capture_output=True)
        self._spawn("slurmctld", [find("slurmctld"), "-D", "-c", "-i"])
        wait_until(lambda: succeeds("scontrol", "ping"), "slurmctld")
        self._spawn("slurmd", [find("slurmd"), "-D"])
        wait_until(self._node_ready, "slurmd (node idle)")
        return self

    def stop(self) -> None:
        """End every job, stop every daemon started here (newest first), restore /etc/slurm."""
        if any(process.poll() is None for process, _ in self.daemons):
            self._end_jobs()
        for process, log in reversed(self.daemons):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()
        self.daemons.clear()
        shutil.rmtree(ETC, ignore_errors=True)
        if self.etc_existed:
            shutil.copytree(self.saved_etc, ETC, symlinks=True)
        if self.made_munge_run:
            shutil.rmtree(MUNGE_RUN, ignore_errors=True)

    def _end_jobs(self) -> None:
        """Cancel this cluster's jobs, wait for them to go, then kill any step process left."""
        queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
        jobs = queued.stdout.split()
        if jobs:
            subprocess.run(["scancel", *jobs], capture_output=True, timeout=30)
            deadline = time.monotonic() + 30
            while (
                time.monotonic() < deadline
                and subprocess.run(
                    ["squeue", "-h", "-o", "%i"], capture_output=True, text=True
                ).stdout.split()
            ):
                time.sleep(0.5)
        listed = subprocess.run(["scontrol", "listpids"], capture_output=True, text=True)
        for line in listed.stdout.splitlines()[1:]:
            pid = line.split()[0]
            if pid.isdigit():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    # --- daemons --------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list, **kwargs) -> subprocess.Popen:
        log = (self.folder / "logs" / f"{name}.out").open("w")
        process = subprocess.Popen(
            [str(part) for part in command], stdout=log, stderr=subprocess.STDOUT, **kwargs
        )
        self.daemons.append((process, log))
        return process

    def _start_munge(self) -> None:
        if not MUNGE_RUN.exists():
            MUNGE_RUN.mkdir(mode=0o755)
            shutil.chown(MUNGE_RUN, "munge", "munge")
            self.made_munge_run = True
        socket_path = MUNGE_RUN / "munge.socket.2"
        if socket_path.exists() and succeeds("sh", "-c", "munge -n | unmunge"):
            return  # a munged the machine already runs
        munge_log = self.folder / "logs" / "munged.log"
        munge_log.touch()
        shutil.chown(munge_log, "munge", "munge")
        shutil.chown(self.folder / "logs", "munge", "munge")
        self._spawn(
            "munged",
            [find("munged"), "-F", f"--log-file={munge_log}", "--pid-file", MUNGE_RUN / "t.pid"],
            user="munge",
            group="munge",
        )
        wait_until(lambda: succeeds("sh", "-c", "munge -n | unmunge"), "munged")

    def _start_database(self) -> None:
        data = self.folder / "mariadb"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.db_port = free_port()
        self._spawn(
            "mariadbd",
            [
                find("mariadbd"),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={self.folder / 'mariadb.sock'}",
                f"--pid-file={self.folder / 'mariadb.pid'}",
                "--bind-address=127.0.0.1",
                f"--port={self.db_port}",
                "--user=root",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=32M",
            ],
        )
        wait_until(self._database_ready, "mariadbd")

    def _database_ready(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.db_port)) == 0

    def _node_ready(self) -> bool:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        return result.stdout.strip() == "idle"

    # --- configuration --------------------------------------------------------------------------

    def _write_configs(self) -> None:
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
        node_line = node.stdout.splitlines()[0]
        state = self.folder
        accounting = (
            [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                "AccountingStorageTRES=gres/gpu",
                "AccountingStoreFlags=job_comment",
                "JobAcctGatherType=jobacct_gather/linux",
            ]
            if self.accounting
            else ["AccountingStorageType=accounting_storage/none"]
        )
        lines = [
            f"ClusterName={CLUSTER}",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MinJobAge=600",
            "KillWait=10",
            "ReturnToService=2",
            "GresTypes=gpu",
            f"StateSaveLocation={state / 'state'}",
            f"SlurmdSpoolDir={state / 'spool'}",
            f"SlurmctldPidFile={state / 'slurmctld.pid'}",
            f"SlurmdPidFile={state / 'slurmd.pid'}",
            f"SlurmctldLogFile={state / 'logs' / 'slurmctld.log'}",
            f"SlurmdLogFile={state / 'logs' / 'slurmd.log'}",
            *accounting,
            f"{node_line} Gres=gpu:1 State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
        ]
        (ETC / "slurm.conf").write_text("\n".join(lines) + "\n")
        (ETC / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={self.host} Name=gpu File=/dev/null Count=1\n"
        )
        if self.accounting:
            dbd = ETC / "slurmdbd.conf"
            dbd.write_text(
                "\n".join(
                    [
                        "AuthType=auth/munge",
                        "DbdHost=localhost",
                        "DbdAddr=127.0.0.1",
                        "SlurmUser=root",
                        f"PidFile={state / 'slurmdbd.pid'}",
                        f"LogFile={state / 'logs' / 'slurmdbd.log'}",
                        "StorageType=accounting_storage/mysql",
                        "StorageHost=127.0.0.1",
                        f"StoragePort={self.db_port}",
                        "StorageUser=root",
                        "StorageLoc=slurm_acct_db",
                    ]
                )
                + "\n"
            )
            os.chmod(dbd, 0o600)
