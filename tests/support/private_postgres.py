"""A PostgreSQL server of a test's own, which the test may stop and start (never the machine's shared one).

``initdb`` makes a cluster in a temporary directory (trust auth, user ``postgres``), ``pg_ctl`` starts it
on a free loopback port. PostgreSQL refuses to run as root: as root, its commands run as the ``postgres``
user (``runuser``). Its binaries are found on ``PATH`` or under ``/usr/lib/postgresql/<version>/bin``.
"""

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from tests.support.servers import free_port


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are, or None on a machine without a PostgreSQL server."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


class PrivatePostgres:
    """One PostgreSQL server in ``directory`` on a free port: :meth:`start`, :meth:`stop`, :attr:`url`."""

    def __init__(self, directory: Path, bin_dir: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.bin_dir = bin_dir
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(directory, user.pw_uid, user.pw_gid)

    def _run(self, *command: str) -> None:
        args = [str(self.bin_dir / command[0]), *command[1:]]
        if self._as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command[:2])} failed: {result.stderr or result.stdout}\n{log}")

    def init(self) -> None:
        """A new cluster: trust authentication for the ``postgres`` user on loopback."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        """Stop it the way a restart does: sessions are disconnected, transactions in flight roll back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        """Stop it if it runs, and delete its files."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
