"""``--swap`` and ``--rollback`` against ProFTPD: whole releases, never a mix.

A reader polls DST on the server's disk through a directory descriptor (so one
look sees one directory, as a web server's request does) while the run works:
every look must be exactly one release (plus what the server alone holds).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.clients import run_command
from tests.servers.common import client_env
from tests.servers.faultproxy import DropControl, Fault, FaultProxy, fault_server
from tests.servers.proftpd import (
    ProftpdServer,
    RemoteDir,
    require_proftpd,
    start_proftpd,
)

TIMEOUT = 90

V0 = {"index.html": b"<h1>v0</h1>\n", "css/site.css": b"body{color:red}\n", "old.html": b"old\n"}
V1 = {
    "index.html": b"<h1>version one</h1>\n",
    "css/site.css": b"body{color:red}\n",
    "new/page.html": b"<p>new in v1</p>\n",
}
V2 = {
    "index.html": b"<h1>version two, longer</h1>\n",
    "css/site.css": b"body{color:blue}\n",
    "new/page.html": b"<p>new in v1</p>\n",
}
SERVER_ONLY = {".htaccess": b"Options -Indexes\n", "uploads/photo.jpg": b"\xff\xd8jpeg"}
#: What moves along with every switch: the server's own files, and what SRC lacks
#: (no --delete: a plain run would leave old.html on the server too).
ALONG = {**SERVER_ONLY, "old.html": V0["old.html"]}
V0_RELEASE = {p: d for p, d in V0.items() if p != "old.html"}


def write_tree(root: Path, files: dict[str, bytes], mtime: float | None = None) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))


def give_to_ftp_user(root: Path, home: Path) -> None:
    """Files planted behind the server's back belong to the FTP user, as uploads would."""
    st = home.stat()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), st.st_uid, st.st_gid)
    os.chown(root, st.st_uid, st.st_gid)


def read_tree(root: Path | int) -> dict[str, bytes]:
    """Every file under ``root`` (a path, or a directory descriptor), own files left out."""
    out: dict[str, bytes] = {}
    for dirpath, dirs, files, dirfd in os.fwalk(
        "." if isinstance(root, int) else root, dir_fd=root if isinstance(root, int) else None
    ):
        rel_dir = os.path.normpath(os.path.relpath(dirpath, "." if isinstance(root, int) else root))
        dirs[:] = [d for d in dirs if not d.startswith(".htasyncmirror")]  # the deploy lock
        for name in files:
            if name.startswith((".htasyncmirror", ".asyncmirror")):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            fd = os.open(name, os.O_RDONLY, dir_fd=dirfd)
            with os.fdopen(fd, "rb") as f:
                out[rel] = f.read()
    return out


def assert_one_release(views: list[dict[str, bytes]], *releases: dict[str, bytes]) -> None:
    """Each view is exactly one of ``releases``, plus some of what moves along.

    What the server alone holds moves in the same burst as the switch: a look
    taken between two of its renames may miss some of it, never see a mix.
    """
    for view in views:
        core = {p: d for p, d in view.items() if p not in ALONG}
        assert core in releases, sorted(view)
        assert all(view[p] == ALONG[p] for p in view if p in ALONG), sorted(view)


def assert_locked_throughout(locked: list[bool]) -> None:
    """From the first look that saw the deploy lock to the last, every look saw it:
    the switch never showed DST without it."""
    if True in locked:
        first = locked.index(True)
        last = len(locked) - 1 - locked[::-1].index(True)
        assert all(locked[first : last + 1]), locked


def assert_no_lock_left(*dirs: Path) -> None:
    assert [d for d in dirs if (d / ".htasyncmirror-lock").exists()] == []


def siblings(remote: RemoteDir) -> list[str]:
    return sorted(p.name for p in remote.path.parent.iterdir() if remote.name in p.name)


def run_cli(
    proftpd: ProftpdServer, *args: str | Path, debug: bool = False
) -> subprocess.CompletedProcess[str]:
    return run_cli_env(client_env(proftpd), *args, debug=debug)


def run_cli_env(
    env: dict[str, str], *args: str | Path, debug: bool = False
) -> subprocess.CompletedProcess[str]:
    """``asyncmirror ARGS --json`` (the first two are SRC and DST, or ``--rollback DST``)."""
    first, second, *rest = map(str, args)
    extra = ["--json", *(["--debug"] if debug else [])]
    return run_command(Path(first), second, env, *rest, *extra, timeout=TIMEOUT)


class Watcher:
    """Looks at DST again and again; records every distinct view and how often DST was gone."""

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.views: list[dict[str, bytes]] = []
        self.missing = 0
        self.looks = 0
        #: Per look at DST: whether it held the deploy lock.
        self.locked: list[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.dst, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                self.missing += 1
                continue
            try:
                locked = ".htasyncmirror-lock" in os.listdir(fd)
                view = read_tree(fd)
                # Still DST at the end of the look?  A look that began just before
                # the switch reads the release going away (its lock copy may be
                # gone already): that is not a look at DST.
                still_dst = os.path.samestat(os.fstat(fd), os.stat(self.dst))
            except OSError as exc:  # a file renamed away between listing and opening
                if exc.errno != errno.ENOENT:
                    raise
                continue
            finally:
                os.close(fd)
            if not still_dst:
                continue
            self.looks += 1
            self.locked.append(locked)
            if not self.views or self.views[-1] != view:
                self.views.append(view)


@pytest.fixture
def site(tmp_path: Path, proftpd: ProftpdServer, remote_dir: RemoteDir) -> RemoteDir:
    """A live site deployed earlier by another tool, with files only the server has."""
    write_tree(remote_dir.path, {**V0, **SERVER_ONLY}, mtime=1_600_000_000)
    give_to_ftp_user(remote_dir.path, proftpd.home)
    return remote_dir


def report(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.stdout.strip().startswith("{"), proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_swap_switches_whole_releases_and_rollback_brings_the_previous_back(
    tmp_path: Path, proftpd: ProftpdServer, site: RemoteDir
) -> None:
    prev = site.path.parent / f".htasyncmirror-prev.{site.name}"
    src1, src2 = tmp_path / "v1", tmp_path / "v2"
    write_tree(src1, V1)
    write_tree(src2, V2)

    with Watcher(site.path) as watcher:
        first = run_cli(proftpd, src1, f"/{site.name}", "--swap", "-j", "3")
    assert first.returncode == 0, first.stderr
    assert report(first)["uploaded"] == len(V1), first.stderr  # the first swap uploads all
    assert read_tree(site.path) == {**V1, **ALONG}
    assert read_tree(prev) == V0_RELEASE, "the previous release must be kept"
    assert watcher.looks > 0
    assert_one_release(watcher.views, V0_RELEASE, V1)
    assert "3 server-only paths moved along" in first.stderr, first.stderr
    assert_locked_throughout(watcher.locked)
    assert_no_lock_left(site.path, prev)

    with Watcher(site.path) as watcher:
        second = run_cli(proftpd, src2, f"/{site.name}", "--swap", "-j", "3")
    assert second.returncode == 0, second.stderr
    # The staging copy was the release before (v0): what differs from it goes up.
    changed_since_v0 = [p for p in V2 if V0.get(p) != V2[p]]
    assert report(second)["uploaded"] == len(changed_since_v0), second.stderr
    assert read_tree(site.path) == {**V2, **ALONG}
    assert read_tree(prev) == V1
    assert_one_release(watcher.views, V1, V2)

    # The staging copy is now the v1 release, state file and times included: a deploy
    # of v1 again uploads nothing and still switches.
    third = run_cli(proftpd, src1, f"/{site.name}", "--swap", "-j", "3")
    assert third.returncode == 0, third.stderr
    assert report(third)["uploaded"] == 0, third.stderr
    assert read_tree(site.path) == {**V1, **ALONG}
    assert read_tree(prev) == V2

    back = run_cli(proftpd, "--rollback", f"/{site.name}")
    assert back.returncode == 0, back.stderr
    assert "rolled back" in back.stderr, back.stderr
    assert read_tree(site.path) == {**V2, **ALONG}, "rollback must restore the release exactly"
    assert read_tree(prev) == V1
    assert siblings(site) == sorted([site.name, prev.name])


def test_the_switch_goes_out_in_one_write(
    tmp_path: Path, proftpd: ProftpdServer, site: RemoteDir
) -> None:
    src = tmp_path / "v1"
    write_tree(src, V1)
    proc = run_cli(proftpd, src, f"/{site.name}", "--swap", debug=True)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("-> ", "<- "))]
    step_aside = lines.index(f"-> RNFR /{site.name}")
    go_live = lines.index(f"-> RNTO /{site.name}")
    between = lines[step_aside : go_live + 1]
    # Every command of the burst is sent before the first of its replies is read.
    assert not [ln for ln in between if ln.startswith("<- ")], between


def test_a_swap_that_fails_before_the_switch_leaves_the_live_site_as_it_was(
    tmp_path: Path, proftpd: ProftpdServer, site: RemoteDir
) -> None:
    src = tmp_path / "v1"
    write_tree(src, V1)
    staging = site.path.parent / f".htasyncmirror-next.{site.name}"
    # An unfinished release in the way: a directory where SRC has a file.
    (staging / "index.html").mkdir(parents=True)
    give_to_ftp_user(staging, proftpd.home)
    before = read_tree(site.path)

    failed = run_cli(proftpd, src, f"/{site.name}", "--swap")

    assert failed.returncode == 1, failed.stderr
    assert "the live site is unchanged" in failed.stderr, failed.stderr
    assert read_tree(site.path) == before
    assert staging.is_dir(), "the staging copy is kept for the next try"

    (staging / "index.html").rmdir()
    again = run_cli(proftpd, src, f"/{site.name}", "--swap")
    assert again.returncode == 0, again.stderr
    assert read_tree(site.path) == {**V1, **ALONG}


@pytest.mark.parametrize("dst", ["/", "."])
def test_swap_refuses_a_dst_that_cannot_be_renamed_before_uploading(
    tmp_path: Path, proftpd: ProftpdServer, dst: str
) -> None:
    src = tmp_path / "v1"
    write_tree(src, V1)
    before = proftpd.stored_paths()
    proc = run_cli(proftpd, src, dst, "--swap")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cannot be renamed" in proc.stderr, proc.stderr
    assert proftpd.stored_paths() == before  # nothing went up


def test_rollback_without_a_previous_release_says_so(
    proftpd: ProftpdServer, site: RemoteDir
) -> None:
    before = read_tree(site.path)
    proc = run_cli(proftpd, "--rollback", f"/{site.name}")
    assert proc.returncode == 3, proc.stderr
    assert "no previous release" in proc.stderr, proc.stderr
    assert read_tree(site.path) == before


@pytest.fixture(scope="module")
def copying_proftpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """ProFTPD with mod_copy: ``SITE CPFR``/``SITE CPTO`` copy on the server."""
    require_proftpd()
    server = start_proftpd(tmp_path_factory.mktemp("mod_copy"), extra_modules=("mod_copy.c",))
    try:
        yield server
    finally:
        server.stop()


def test_a_first_swap_copies_the_live_site_on_the_server_and_uploads_only_what_differs(
    tmp_path: Path, copying_proftpd: ProftpdServer
) -> None:
    server, name, past = copying_proftpd, "copied-site", 1_600_000_000
    live = server.home / name
    old = {"index.html": b"<h1>one</h1>\n", "css/a.css": b"body{color:red}\n", "p/x.html": b"x\n"}
    new = {"index.html": b"<h1>two, longer</h1>\n", "css/a.css": b"body{color:tan}\n"}
    new["p/x.html"] = old["p/x.html"]
    write_tree(live, {**old, **SERVER_ONLY}, mtime=past)
    give_to_ftp_user(live, server.home)
    src = tmp_path / "src"
    write_tree(src, new, mtime=past)
    # Same size, other bytes, a time after the live copy's but long past: a copy
    # stamped "now" by the server would hide this change.
    for changed in ("index.html", "css/a.css"):
        os.utime(src / changed, (past + 100, past + 100))
    before = server.stor_count()

    with Watcher(live) as watcher:
        proc = run_cli(server, src, f"/{name}", "--swap", "-j", "3")

    assert proc.returncode == 0, proc.stderr
    assert "3 files copied from the live site on the server" in proc.stderr, proc.stderr
    assert report(proc)["uploaded"] == 2, proc.stderr  # p/x.html came by copy
    assert server.stor_count() - before == 3  # the two files and the state file
    assert read_tree(live) == {**new, **SERVER_ONLY}
    prev = live.parent / f".htasyncmirror-prev.{name}"
    assert read_tree(prev) == old, "the previous release is the site as it was"
    assert_one_release(watcher.views, old, new)
    leftovers = [p for p in (live, prev) for p in p.rglob(".htasyncmirror-tmp-*")]
    assert leftovers == []
    # The next deploy starts from the previous release, as usual: no copy.
    again = run_cli(server, src, f"/{name}", "--swap", "-j", "3")
    assert again.returncode == 0, again.stderr
    assert "copied from the live site" not in again.stderr
    assert report(again)["uploaded"] == 2, again.stderr
    assert read_tree(live) == {**new, **SERVER_ONLY}


@pytest.fixture(scope="module")
def copying_behind_proxy(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ProftpdServer, FaultProxy]]:
    """ProFTPD with mod_copy behind the fault proxy (control and data through it)."""
    with fault_server(
        tmp_path_factory.mktemp("mod_copy_faults"), extra_modules=("mod_copy.c",)
    ) as both:
        yield both


def test_a_connection_cut_during_the_first_swap_seed_uploads_the_rest_and_deploys(
    tmp_path: Path, copying_behind_proxy: tuple[ProftpdServer, FaultProxy]
) -> None:
    """The control connection carrying one of the seed's ``SITE`` commands (the 3rd
    seen over all its sessions) is reset.  The server-side copies only save uploads:
    the run says the copying stopped, uploads what is not in place, and switches --
    the new live site is SRC, the previous one the old site, no temporary copy left."""
    server, proxy = copying_behind_proxy
    proxy.reset()
    name, past = "seed-cut", 1_600_000_000
    live = server.home / name
    old = {f"p/page{i}.html": f"<p>page {i}</p>\n".encode() * (i + 1) for i in range(6)}
    old["index.html"] = b"<h1>one</h1>\n"
    new = {**old, "index.html": b"<h1>two, longer</h1>\n"}
    write_tree(live, {**old, **SERVER_ONLY}, mtime=past)
    give_to_ftp_user(live, server.home)
    src = tmp_path / "src"
    write_tree(src, new, mtime=past)
    os.utime(src / "index.html", (past + 100, past + 100))
    env = {**client_env(server), "FTP_SERVER": f"{proxy.host}:{proxy.port}"}
    cut = Fault("SITE", DropControl(), every=3, times=1)
    proxy.inject(cut)

    done = run_cli_env(env, src, f"/{name}", "--swap", "-j", "3", "--timeout", "5")

    assert cut.done == 1, proxy.describe()
    assert done.returncode == 0, done.stderr
    assert "copying the live site on the server stopped" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    # The copies are placed only once all are made: none was, so all of SRC went up.
    assert report(done)["uploaded"] == len(new), done.stderr
    assert read_tree(live) == {**new, **SERVER_ONLY}
    prev = live.parent / f".htasyncmirror-prev.{name}"
    assert read_tree(prev) == old, "the previous release is the site as it was"
    assert [p for d in (live, prev) for p in d.rglob(".htasyncmirror-tmp-*")] == []

    proxy.reset()
    again = run_cli_env(env, src, f"/{name}", "--swap", "-j", "3", "--timeout", "5")
    assert again.returncode == 0, again.stderr
    # The previous release is recycled as the staging copy: only index.html differs.
    assert report(again)["uploaded"] == 1, again.stderr
    assert read_tree(live) == {**new, **SERVER_ONLY}
