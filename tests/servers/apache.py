"""Apache httpd 2.4 serving a directory with the stock rule for ``.ht*`` names.

The reference host runs Apache in front of the directories asyncmirror uploads to;
whatever asyncmirror keeps in DST must not be downloadable there.  The rule below
is the one in Apache's own default ``httpd.conf`` (Debian's ``apache2.conf`` has the
same as ``<FilesMatch "^\\.ht">``); nothing else is configured, so the answer to a
request is what a stock server gives.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .common import ServerStartError, pick_ports, tail

INSTALL_HINT = "install it with `apt-get install apache2` (scripts/test.sh does)"
MODULES = Path("/usr/lib/apache2/modules")

STOCK_HT_RULE = """\
<Files ".ht*">
    Require all denied
</Files>
"""


def apache_binary() -> str | None:
    return (
        shutil.which("apache2")
        or shutil.which("httpd")
        or ("/usr/sbin/apache2" if os.access("/usr/sbin/apache2", os.X_OK) else None)
    )


def apache_unavailable_reason() -> str | None:
    if apache_binary() is None:
        return "apache2 is not installed"
    if not (MODULES / "mod_authz_core.so").exists():
        return f"{MODULES}/mod_authz_core.so is missing"
    return None


@dataclass
class ApacheServer:
    port: int
    workdir: Path
    config: Path

    def status(self, path: str) -> int:
        """The HTTP status of ``GET /path`` (no body kept)."""
        url = f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code

    def stop(self) -> None:
        binary = apache_binary()
        assert binary is not None
        subprocess.run(
            [binary, "-f", str(self.config), "-k", "stop"], capture_output=True, check=False
        )
        pid_file = self.workdir / "httpd.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def start_apache(workdir: Path, root: Path) -> ApacheServer:
    """Serve ``root`` on a free port of 127.0.0.1; ``stop()`` when done."""
    binary = apache_binary()
    if binary is None:
        raise ServerStartError(f"Apache is not available; {INSTALL_HINT}")
    workdir.mkdir(parents=True, exist_ok=True)
    port, _ = pick_ports(1)
    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    config = workdir / "httpd.conf"
    config.write_text(
        f"""ServerName localhost
Listen 127.0.0.1:{port}
PidFile {workdir}/httpd.pid
DefaultRuntimeDir {workdir}
ErrorLog {workdir}/error.log
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
{user}DocumentRoot "{root}"
<Directory "{root}">
    Require all granted
</Directory>
{STOCK_HT_RULE}"""
    )
    done = subprocess.run(
        [binary, "-f", str(config), "-k", "start"], capture_output=True, text=True, check=False
    )
    server = ApacheServer(port, workdir, config)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            server.status("/")
            return server
        time.sleep(0.05)
    log = tail(workdir / "error.log") if (workdir / "error.log").exists() else ""
    raise ServerStartError(f"Apache did not start: {done.stderr.strip()} {log}")
