"""A throw-away PostgreSQL server for the shared-keystore tests: initdb in a temp dir, a free loopback port,
trust authentication, started and stopped with pg_ctl. PostgreSQL refuses to run as root, so under root
the server runs as the Debian `postgres` user."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pacsgw_harness as h


def pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise FileNotFoundError(f"{tool} not found: install Debian's postgresql package")
    return found[-1]


class PostgresServer:
    def __init__(self, workdir: Path, user: str = "pacsgw", database: str = "pacsgw_keys"):
        self.workdir = Path(workdir)
        self.data = self.workdir / "pgdata"
        self.log_path = self.workdir / "postgres.log"
        self.port = h.free_port()
        self.user = user
        self.database = database
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _run(self, args, timeout=120):
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        result = subprocess.run(prefix + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{h.tail(self.log_path)}")
        return result.stdout

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            info = pwd.getpwnam(self.run_as)
            os.chown(self.workdir, info.pw_uid, info.pw_gid)
            # The server must be able to reach its directory through every parent we created (private
            # temp directories are 0700).
            temp_root = Path(tempfile.gettempdir()).resolve()
            for parent in self.workdir.resolve().parents:
                if parent != temp_root and temp_root in parent.parents:
                    os.chmod(parent, os.stat(parent).st_mode | 0o711)
        self._run([pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", self.user, "-E", "UTF8", "--no-sync"])
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off "
                   f"-c max_connections=50")
        self._run([pg_bin("pg_ctl"), "-D", self.data, "-l", self.log_path, "-o", options, "-w", "-t", "60", "start"])
        self.psql("postgres", f"CREATE DATABASE {self.database}")
        return self

    def stop(self):
        if self.data.exists():
            try:
                self._run([pg_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"])
            except RuntimeError:
                pass

    @property
    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={self.database} user={self.user} connect_timeout=10"

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run([pg_bin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                                 "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{result.stdout}")
        return result.stdout.strip()

    def query(self, sql: str) -> str:
        return self.psql(self.database, sql)


class PostgresGateway(h.Gateway):
    """A gateway whose keystore is the shared PostgreSQL database instead of an SQLite file."""

    def __init__(self, workdir: Path, conninfo: str, **kwargs):
        super().__init__(workdir, **kwargs)
        self.conninfo = conninfo

    def config_yaml(self) -> str:
        lines = super().config_yaml().splitlines()
        at = lines.index("keystore:") + 1
        assert lines[at].startswith("  path: ")
        lines[at] = f"  postgres: {h._yaml_scalar(self.conninfo)}"
        return "\n".join(lines) + "\n"
