"""Real services for the tests: Mosquitto and influxd on free ports, restartable.

Kept apart from conftest.py so benchmarks and the demo can start the same services.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def make_tls_files(workdir: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""
    ca_key, ca, key, csr, cert = (workdir / n for n in ("ca.key", "ca.crt", "server.key",
                                                         "server.csr", "server.crt"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=test-ca", "-keyout", str(ca_key), "-out", str(ca))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(csr))
    ext = workdir / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return ca, cert, key


class Mosquitto:
    """A Mosquitto broker of the test's own, with persistence so restarts keep sessions.

    ``users`` turns on password authentication; ``tls`` serves TLS with a throw-away CA
    (``self.ca_file``).
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls = tls
        self.ca_file: Path | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        extra = ""
        if users:
            passwd = workdir / "passwd"
            passwd.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password],
                               check=True, capture_output=True)
            extra += f"password_file {passwd}\n"
        if tls:
            self.ca_file, cert, key = make_tls_files(workdir)
            extra += f"cafile {self.ca_file}\ncertfile {cert}\nkeyfile {key}\n"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            # Started as root, Mosquitto would drop to user "mosquitto" and lose its own files.
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'false' if users else 'true'}\n"
            f"{extra}"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            # No cap on queued QoS 1 messages for an offline persistent session: the tests
            # check that nothing is lost while the gateway is down.
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "max_packet_size 1048576\n"
            "set_tcp_nodelay true\n"
            f"log_dest file {workdir}/mosquitto.log\n"
        )

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)])
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


#: No cap on a tag's distinct values: 1.x refuses the 100,001st device of one type otherwise.
TAG_VALUES_UNCAPPED = {"max-values-per-tag": "0"}
#: The settings the README gives for 10,000+ devices (what the fleet benchmark measures): a
#: 128 MiB cache snapshot, so each snapshot writes many points per series instead of one or
#: two (with 100,000 devices' series the default 25 MiB about doubles influxd's CPU per point).
LARGE_FLEET = {"cache-snapshot-memory-size": '"128m"', **TAG_VALUES_UNCAPPED}


class Influxd:
    """An InfluxDB 1.x server (Debian's `influxdb` package) in a directory of the test's own."""

    def __init__(self, workdir: Path, *, data: Mapping[str, str] | None = None) -> None:
        """``data``: extra settings of the ``[data]`` section, e.g. ``LARGE_FLEET``."""
        self.workdir = workdir
        self.port = free_port()
        self.rpc_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "influxdb.conf"
        extra = "".join(f"  {key} = {value}\n" for key, value in (data or {}).items())
        self.conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
            "  query-log-enabled = false\n"
            f"{extra}"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        log = open(self.workdir / "influxd.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([binary, "-config", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/ping", timeout=0.5):
                return
            time.sleep(0.1)
        raise TimeoutError("influxd did not answer /ping within 30 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def query(self, q: str, db: str | None = None) -> dict:  # type: ignore[type-arg]
        import json
        import urllib.parse

        params = {"q": q}
        if db:
            params["db"] = db
        url = f"{self.url}/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def write_lines(self, db: str, lines: str) -> None:
        """Write line protocol (nanosecond timestamps) as another tool would."""
        request = urllib.request.Request(f"{self.url}/write?db={db}", data=lines.encode())
        urllib.request.urlopen(request, timeout=10).close()

    def create_database(self, name: str) -> None:
        """Create it and wait until it takes writes (right after a restart influxd answers
        /ping a moment before its meta store accepts new databases)."""
        import json
        import urllib.error
        import urllib.parse

        data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as r:
                    body = json.loads(r.read())
                if "error" not in body["results"][0]:
                    probe = urllib.request.Request(
                        f"{self.url}/write?db={name}&precision=ms", data=b"_probe v=1i 1"
                    )
                    urllib.request.urlopen(probe, timeout=10).close()
                    return
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"influxd did not create database {name!r}")
            time.sleep(0.2)


def pg_admin_url() -> str:
    return os.environ.get("SAFETY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
