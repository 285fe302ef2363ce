"""``asyncmirror demo``: see a real mirror run in one command, no server needed.

Starts an embedded FTPS server (pyftpdlib's ``TLS_FTPHandler``, explicit TLS
required on control and data connections) on 127.0.0.1 with a certificate
from a throw-away CA that only this run trusts, generates a sample website
tree, mirrors it with progress and the final report, changes a few files and
mirrors again, and checks the server's bytes against the local ones.
Needs the ``demo`` extra: ``pip install 'asyncmirror[demo]'``.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import errors, runner


def make_sample_tree(root: Path, files: int, *, seed: int = 7) -> None:
    """A small website: pages, styles, scripts, images, a dotfile the rules leave out."""
    rng = random.Random(seed)
    kinds = [
        ("", ".html", 4_000),
        ("css", ".css", 8_000),
        ("js", ".js", 20_000),
        ("img", ".png", 60_000),
        ("blog/2026", ".html", 6_000),
    ]
    for i in range(files):
        sub, ext, size = kinds[i % len(kinds)]
        d = root / sub
        d.mkdir(parents=True, exist_ok=True)
        (d / f"page-{i:04d}{ext}").write_bytes(rng.randbytes(rng.randint(0, size)))
    (root / ".env").write_text("SECRET=not-for-the-server\n")
    (root / "empty.txt").write_bytes(b"")


class _Server:
    def __init__(self, home: Path, password: str) -> None:
        try:
            import trustme
            from pyftpdlib.authorizers import DummyAuthorizer
            from pyftpdlib.handlers import TLS_FTPHandler
            from pyftpdlib.servers import FTPServer
        except ImportError:
            raise errors.UsageError(
                "the demo needs pyftpdlib, pyOpenSSL and trustme",
                hint="pip install 'asyncmirror[demo]'",
            ) from None
        self.tmp = Path(tempfile.mkdtemp(prefix="asyncmirror-demo-cert-"))
        try:  # whatever fails here must not leave the CA directory behind
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            self.ca_file = str(self.tmp / "ca.pem")
            ca.cert_pem.write_to_path(self.ca_file)
            certfile = str(self.tmp / "server.pem")
            cert.private_key_and_cert_chain_pem.write_to_path(certfile)

            authorizer = DummyAuthorizer()
            authorizer.add_user("demo", password, str(home), perm="elradfmwMT")

            class Handler(TLS_FTPHandler):  # type: ignore[misc]
                pass

            Handler.authorizer = authorizer
            Handler.certfile = certfile
            Handler.tls_control_required = True
            Handler.tls_data_required = True
            Handler.banner = "asyncmirror demo server ready"
            Handler.passive_ports = None
            import logging

            # pyftpdlib configures its own chatty logging unless a handler exists.
            quiet = logging.getLogger("pyftpdlib")
            if not quiet.handlers:
                quiet.addHandler(logging.NullHandler())
            quiet.propagate = False
            self.server: Any = FTPServer(("127.0.0.1", 0), Handler)
            self.server.max_cons = 64
            self.port: int = self.server.socket.getsockname()[1]
            self.thread = threading.Thread(
                target=self.server.serve_forever,
                kwargs={"timeout": 0.2, "blocking": True},
                daemon=True,
            )
            self.thread.start()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def stop(self) -> None:
        self.server.close_all()
        self.thread.join(timeout=5)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _same_bytes(src: Path, dst: Path) -> tuple[int, list[str]]:
    checked, bad = 0, []
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if path.is_dir() or any(part.startswith(".") for part in rel.parts):
            continue
        checked += 1
        other = dst / rel
        if not other.is_file() or other.read_bytes() != path.read_bytes():
            bad.append(str(rel))
    return checked, bad


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncmirror demo",
        description="Mirror a sample tree to an embedded FTPS server.",
        exit_on_error=False,
    )
    parser.add_argument("--files", type=int, default=200, help="files in the sample tree")
    parser.add_argument("-j", "--jobs", type=int, default=8)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the sample tree and the server's copy (removed at the end otherwise)",
    )
    return parser


def is_demo(argv: Sequence[str]) -> bool:
    """Is ``asyncmirror demo ARGV`` the demo, not a mirror of a directory named demo?

    The demo takes no operand and a mirror needs DST: an operand left over
    after the demo's own options makes it a mirror.  A bad value for a demo
    option (``--files x``) is the demo's to report.
    """
    try:
        _, rest = build_parser().parse_known_args(list(argv))
    except argparse.ArgumentError:
        return True
    return not any(not arg.startswith("-") for arg in rest)


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except argparse.ArgumentError as exc:
        parser.error(str(exc))  # exits 2 with the usage line, as argparse does by default
    try:
        return _demo(args)
    except errors.AsyncMirrorError as exc:
        print(f"asyncmirror: error: {exc.user_line()}", file=sys.stderr)
        return exc.exit_code


def _demo(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="asyncmirror-demo-"))
    try:
        return _demo_in(work, args)
    finally:
        # A demo run by hand, or by a test suite, must not leave a tree behind each time.
        if args.keep:
            print(f"\nkept the sample tree and the server's copy in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _demo_in(work: Path, args: argparse.Namespace) -> int:
    # Imported here: `asyncmirror demo www` (a mirror) must not pay for them first.
    from .mirroring import mirror
    from .progress import ConsoleEvents

    src, home = work / "site", work / "server-home"
    src.mkdir()
    home.mkdir()
    make_sample_tree(src, args.files)
    password = secrets.token_urlsafe(12)
    server = _Server(home, password)
    out = sys.stderr
    print(
        f"asyncmirror demo: FTPS server on 127.0.0.1:{server.port} (TLS required), "
        f"sample tree of {args.files} files in {src}",
        file=out,
    )
    try:
        code = 0
        for title, change in (("first upload", False), ("after changing 3 files", True)):
            if change:
                for name in ("page-0000.html", "css/page-0001.css", "js/page-0002.js"):
                    (src / name).write_bytes(os.urandom(1234))
                    os.utime(src / name)  # make sure they are newer than on the server
            print(f"\n== mirror -X '.*' -X '.*/' ({title}) ==", file=out)
            events = ConsoleEvents(
                stream=out, verbose=1 if change else 0, bars=not args.no_progress and out.isatty()
            )
            report = runner.run(
                mirror(
                    str(src),
                    "www",
                    host="127.0.0.1",
                    port=server.port,
                    user="demo",
                    password=password,
                    jobs=args.jobs,
                    exclude=(".*", ".*/"),
                    ca_file=server.ca_file,
                    events=events,
                )
            )
            print("asyncmirror: " + report.summary(), file=out)
            code = max(code, report.exit_code)
        checked, bad = _same_bytes(src, home / "www")
        dot = (home / "www" / ".env").exists()
        print(
            f"\nchecked {checked} files on the server: "
            f"{'all byte-identical' if not bad else f'{len(bad)} differ'}; "
            f"dotfile {'uploaded (wrong!)' if dot else 'left out'}",
            file=out,
        )
        return code if not bad and not dot else 1
    finally:
        server.stop()
