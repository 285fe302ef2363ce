"""Change detection that survives a fresh checkout (issue 6), against the real ProFTPD.

A CI job checks the repository out again: every file gets a new mtime, the bytes are the
same. With remote mtimes set from the local ones and the content-hash state file in DST,
such a run must upload nothing; a same-size edit must still be found.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import xxhash

from asyncmirror import Report
from tests.integration.clients import mirror_to
from tests.integration.treebuilders import build_small_tree, snapshot, write_file
from tests.servers.featsilent import FeatSilentProxy
from tests.servers.proftpd import ProftpdServer, RemoteDir

STATE = ".htasyncmirror-state.json"


def run(
    proftpd: ProftpdServer, proxy: FeatSilentProxy, src: Path, dst: str, **kwargs: Any
) -> Report:
    return mirror_to(proftpd, src, dst, via=(proxy.host, proxy.port), **kwargs)


def stors(proftpd: ProftpdServer) -> int:
    return proftpd.stor_count()


def fresh_checkout(src: Path, dst: Path) -> None:
    """A copy with the same bytes and new mtimes (an hour later), like `git clone`."""
    shutil.copytree(src, dst)
    later = time.time() + 3600
    for path in dst.rglob("*"):
        if path.is_file():
            os.utime(path, (later, later))


def fresh_checkout_uploads_nothing(
    proftpd: ProftpdServer, proxy: FeatSilentProxy, src: Path, remote: RemoteDir, checkout: Path
) -> None:
    """Check out ``src`` again (same bytes, new mtimes) and run: nothing goes up but,
    at most, the state file itself (it learns the new mtimes)."""
    fresh_checkout(src, checkout)
    before = stors(proftpd)
    report = run(proftpd, proxy, checkout, remote.name)
    assert report.failed == []
    assert report.uploaded == 0
    assert stors(proftpd) - before <= 1


def test_remote_mtimes_follow_and_a_fresh_checkout_uploads_nothing(
    proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    tree = build_small_tree(tmp_path / "src")
    first = run(proftpd, featsilent, tree.root, remote_dir.name)
    assert first.failed == []
    for rel in tree.files:
        assert int((remote_dir.path / rel).stat().st_mtime) == int(
            (tree.root / rel).stat().st_mtime
        ), rel
    state = json.loads((remote_dir.path / STATE).read_bytes())
    assert set(state["files"]) == set(tree.files)

    checkout = tmp_path / "checkout"
    fresh_checkout_uploads_nothing(proftpd, featsilent, tree.root, remote_dir, checkout)

    # The next run trusts the recorded mtimes and does not even hash.
    before = stors(proftpd)
    report = run(proftpd, featsilent, checkout, remote_dir.name)
    assert report.uploaded == 0
    assert stors(proftpd) == before


def test_the_state_holds_each_file_s_digest_and_a_fresh_checkout_of_a_large_file_skips_it(
    proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    """What the state records is the XXH3-128 of the exact bytes on the server, for a
    5 MiB file (many chunks) as for a small one; a fresh checkout then uploads nothing."""
    src = tmp_path / "src"
    big = os.urandom(5 * 1024 * 1024 + 12345)
    small = b"small file\n"
    write_file(src, "media/big.bin", big)
    write_file(src, "index.html", small)
    first = run(proftpd, featsilent, src, remote_dir.name)
    assert first.failed == []
    assert first.uploaded == 2
    assert (remote_dir.path / "media/big.bin").read_bytes() == big
    doc = json.loads((remote_dir.path / STATE).read_bytes())
    assert doc["version"] == 2
    files = doc["files"]
    assert files["media/big.bin"] == {
        "size": len(big),
        "mtime": os.stat(src / "media/big.bin").st_mtime,
        "xxh3_128": xxhash.xxh3_128(big).hexdigest(),
    }
    assert files["index.html"]["xxh3_128"] == xxhash.xxh3_128(small).hexdigest()

    fresh_checkout_uploads_nothing(proftpd, featsilent, src, remote_dir, tmp_path / "checkout")


def test_a_state_file_from_asyncmirror_0_1_with_sha256_still_skips_a_fresh_checkout(
    proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    """An upgrade must not re-upload a site: version-1 entries carry SHA-256, and a file
    whose mtime changed is compared with that, then recorded anew."""
    tree = build_small_tree(tmp_path / "src")
    assert run(proftpd, featsilent, tree.root, remote_dir.name).failed == []
    state_path = remote_dir.path / STATE
    doc = json.loads(state_path.read_bytes())
    old = {
        "version": 1,
        "tool": "asyncmirror",
        "files": {
            rel: {
                "size": e["size"],
                "mtime": e["mtime"],
                "sha256": hashlib.sha256((tree.root / rel).read_bytes()).hexdigest(),
            }
            for rel, e in doc["files"].items()
        },
    }
    state_path.write_bytes(json.dumps(old).encode())

    fresh_checkout_uploads_nothing(
        proftpd, featsilent, tree.root, remote_dir, tmp_path / "checkout"
    )
    again = json.loads(state_path.read_bytes())
    assert again["version"] == 2
    assert set(again["files"]) == set(old["files"])


def test_a_same_size_edit_is_uploaded_exactly_once(
    proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    tree = build_small_tree(tmp_path / "src")
    assert run(proftpd, featsilent, tree.root, remote_dir.name).failed == []
    checkout = tmp_path / "checkout"
    fresh_checkout(tree.root, checkout)
    victim = sorted(r for r in tree.files if (tree.root / r).stat().st_size > 2)[0]
    data = bytearray((checkout / victim).read_bytes())
    data[0] ^= 0xFF  # same size, different bytes
    (checkout / victim).write_bytes(bytes(data))
    later = time.time() + 3600
    os.utime(checkout / victim, (later, later))

    report = run(proftpd, featsilent, checkout, remote_dir.name)
    assert report.failed == []
    assert report.plan is not None
    assert [u.path for u in report.plan.uploads] == [victim]
    assert report.uploaded == 1
    assert (remote_dir.path / victim).read_bytes() == bytes(data)


def test_corrupt_state_falls_back_to_the_listing_with_a_notice(
    proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    tree = build_small_tree(tmp_path / "src")
    assert run(proftpd, featsilent, tree.root, remote_dir.name).failed == []
    (remote_dir.path / STATE).write_bytes(b"{ not json")
    checkout = tmp_path / "checkout"
    fresh_checkout(tree.root, checkout)
    report = run(proftpd, featsilent, checkout, remote_dir.name)
    assert report.failed == []
    assert any("state" in n and "listing" in n for n in report.notes), report.notes
    # Without a usable state, newer files go up again: correct, just not clever.
    assert report.uploaded == len(tree.files)
    assert snapshot(remote_dir.path, skip_own=True) == snapshot(checkout)
    # And the state is whole again afterwards.
    again = json.loads((remote_dir.path / STATE).read_bytes())
    assert again["version"] == 2
    assert set(again["files"]) == set(tree.files)


def test_state_file_kept_locally_and_no_state(
    proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    tree = build_small_tree(tmp_path / "src")
    local_state = tmp_path / "state.json"
    assert (
        run(proftpd, featsilent, tree.root, remote_dir.name, state_file=str(local_state)).failed
        == []
    )
    assert local_state.is_file()
    assert not (remote_dir.path / STATE).exists()

    other = f"{remote_dir.name}-nostate"
    assert run(proftpd, featsilent, tree.root, other, state=False).failed == []
    assert not (proftpd.home / other / STATE).exists()


def test_delete_dry_run_changes_nothing_and_max_delete_stops(
    proftpd: ProftpdServer,
    featsilent: FeatSilentProxy,
    remote_dir: RemoteDir,
    tmp_path: Path,
    ftp_env: dict[str, str],
) -> None:
    src = tmp_path / "src"
    for i in range(4):
        write_file(src, f"keep{i}.txt", b"k" * (i + 1))
    assert run(proftpd, featsilent, src, remote_dir.name).failed == []
    for i in range(3):
        (remote_dir.path / f"stale{i}.txt").write_bytes(b"old")
    before = snapshot(remote_dir.path)

    argv = [sys.executable, "-m", "asyncmirror.cli", str(src), remote_dir.name, "--no-progress"]
    argv += ["--ca-file", str(proftpd.ca_file), "--delete"]
    env = {**os.environ, **ftp_env}
    dry = subprocess.run(
        [*argv, "--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)["plan"]
    assert sorted(plan["delete_files"]) == ["stale0.txt", "stale1.txt", "stale2.txt"]
    assert snapshot(remote_dir.path) == before

    limited = subprocess.run(
        [*argv, "--max-delete", "2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert limited.returncode == 1
    assert "--max-delete" in limited.stderr
    assert snapshot(remote_dir.path) == before

    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert snapshot(remote_dir.path, skip_own=True) == snapshot(src)


def test_a_state_file_under_the_old_name_is_read_once_then_removed(
    proftpd: ProftpdServer, featsilent: FeatSilentProxy, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    """Before 0.2 the state file was ``.asyncmirror-state.json``, which Apache serves."""
    tree = build_small_tree(tmp_path / "src")
    assert run(proftpd, featsilent, tree.root, remote_dir.name).failed == []
    new, old = remote_dir.path / STATE, remote_dir.path / ".asyncmirror-state.json"
    new.rename(old)  # as an older asyncmirror left it

    # Its record still counts: a fresh checkout uploads nothing ...
    fresh_checkout_uploads_nothing(proftpd, featsilent, tree.root, remote_dir, tmp_path / "co")
    # ... and afterwards only the new name is there.
    assert new.is_file()
    assert not old.exists(), "the old, downloadable state file must be removed"
    assert set(json.loads(new.read_bytes())["files"]) == set(tree.visible_files) | {".env"}
