"""The planner: (local tree, remote tree, options) -> what to create, upload, delete.

Pure, table-driven: no network, no disk, no clock.
"""

from __future__ import annotations

import pytest

from asyncmirror.entries import LocalFile, LocalLink, LocalTree, RemoteFile, RemoteTree
from asyncmirror.planner import (
    Link,
    Pending,
    PlanOptions,
    Reason,
    Upload,
    content_candidates,
    make_plan,
    need_transfer,
    plan_links,
)
from asyncmirror.state import StateEntry

T = 1_700_000_000.0  # a fixed "local mtime"
MLSD = 1.0  # MLSD times are whole seconds
LIST = 60.0  # LIST shows minutes


def lf(path: str = "f.txt", size: int = 100, mtime: float = T) -> LocalFile:
    return LocalFile(path=path, size=size, mtime=mtime, abspath=f"/src/{path}")


def rf(
    path: str = "f.txt", size: int | None = 100, mtime: float | None = T, precision: float = MLSD
) -> RemoteFile:
    return RemoteFile(path=path, size=size, mtime=mtime, precision=precision)


def local_tree(files: dict[str, int] | None = None, dirs: set[str] | None = None) -> LocalTree:
    files = files or {}
    dirs = set(dirs or ())
    for path in [*files, *(d + "/" for d in dirs)]:  # as a scan finds them: parents too
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return LocalTree(
        root="/src",
        files={p: lf(p, size) for p, size in files.items()},
        dirs=dirs,
    )


def remote_tree(
    files: dict[str, int] | None = None,
    dirs: set[str] | None = None,
    others: set[str] | None = None,
    *,
    mtime: float = T,
) -> RemoteTree:
    files = files or {}
    dirs = set(dirs or ())
    for path in [*files, *(others or ())]:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return RemoteTree(
        exists=True,
        files={p: rf(p, size, mtime) for p, size in files.items()},
        dirs=dirs,
        others=set(others or ()),
    )


def dotted(path: str, is_dir: bool) -> bool:
    """-X '.*' -X '.*/': a dot name at the end of the path."""
    return path.rpartition("/")[2].startswith(".")


# --- need_transfer: the one transfer rule ----------------------------------------------


@pytest.mark.parametrize(
    ("local", "remote", "only_newer", "expected"),
    [
        pytest.param(lf(), None, True, Reason.NEW, id="new"),
        pytest.param(lf(), rf(), True, None, id="same-size-same-time"),
        # MLSD (1 s): a file newer by more than the precision goes up...
        pytest.param(lf(mtime=T + 2.5), rf(), True, Reason.NEWER, id="newer-beyond-mlsd"),
        pytest.param(lf(mtime=T + 3600), rf(), True, Reason.NEWER, id="newer-by-an-hour"),
        # ...a difference within it (MFMT keeps whole seconds) does not.
        pytest.param(lf(mtime=T + 0.999), rf(), True, None, id="equal-within-mlsd"),
        pytest.param(lf(mtime=T + 1.0), rf(), True, None, id="one-second-is-within-mlsd"),
        # LIST (60 s): a minute's difference is "equal", more is newer.
        pytest.param(lf(mtime=T + 59), rf(precision=LIST), True, None, id="equal-within-list"),
        pytest.param(
            lf(mtime=T + 62), rf(precision=LIST), True, Reason.NEWER, id="newer-beyond-list"
        ),
        pytest.param(
            lf(mtime=T + 30), rf(precision=86400.0), True, None, id="equal-within-day-precision"
        ),
        # A different size always uploads, whatever the times say.
        pytest.param(lf(size=101), rf(), True, Reason.SIZE, id="size-differs"),
        pytest.param(lf(size=0), rf(size=5), True, Reason.SIZE, id="size-differs-empty"),
        pytest.param(
            lf(size=101, mtime=T - 9999), rf(), True, Reason.SIZE, id="size-differs-local-older"
        ),
        # Unknown remote time: the size decides.
        pytest.param(lf(), rf(mtime=None), True, None, id="unknown-mtime-same-size"),
        pytest.param(lf(size=7), rf(mtime=None), True, Reason.SIZE, id="unknown-mtime-new-size"),
        pytest.param(
            lf(), rf(size=None, mtime=None), True, Reason.NEWER, id="nothing-known-uploads"
        ),
        # The remote copy is newer: kept with --only-newer, replaced without it.
        pytest.param(lf(mtime=T - 120), rf(), True, None, id="remote-newer-only-newer"),
        pytest.param(lf(mtime=T - 120), rf(), False, Reason.NEWER, id="remote-newer-plain-mirror"),
        pytest.param(lf(mtime=T - 0.5), rf(), False, None, id="remote-newer-within-precision"),
    ],
)
def test_need_transfer_by_the_listing(
    local: LocalFile, remote: RemoteFile | None, only_newer: bool, expected: Reason | None
) -> None:
    assert need_transfer(local, remote, only_newer=only_newer) is expected


def st(size: int = 100, mtime: float = T - 3600, digest: str = "d1") -> StateEntry:
    """A state entry: what the last run uploaded (an hour before the checkout)."""
    return StateEntry(size, mtime, digest)


CHECKOUT = lf(mtime=T + 3600)  # a fresh checkout: same bytes, a new mtime, "newer"


@pytest.mark.parametrize(
    ("local", "remote", "state", "digest", "expected"),
    [
        # The state settles only a file that looks newer with the server's size...
        pytest.param(CHECKOUT, rf(), None, None, Reason.NEWER, id="no-entry"),
        pytest.param(CHECKOUT, rf(), st(), None, Pending.DIGEST, id="mtime-moved-hash-it"),
        pytest.param(CHECKOUT, rf(), st(), "d1", None, id="same-digest-skipped"),
        pytest.param(CHECKOUT, rf(), st(), "d2", Reason.NEWER, id="other-digest-uploads"),
        pytest.param(CHECKOUT, rf(), st(mtime=T + 3600), None, None, id="same-mtime-trusted"),
        # ...a size that differs anywhere is a change, never read.
        pytest.param(CHECKOUT, rf(), st(size=99), "d1", Reason.NEWER, id="state-size-differs"),
        pytest.param(
            lf(size=101, mtime=T + 3600), rf(), st(size=101), "d1", Reason.SIZE, id="server-size"
        ),
        pytest.param(
            CHECKOUT, rf(size=None, mtime=None), st(), "d1", Reason.NEWER, id="server-size-unknown"
        ),
        # Missing or up to date by the listing: the state changes nothing.
        pytest.param(CHECKOUT, None, st(), "d1", Reason.NEW, id="missing-on-server"),
        pytest.param(lf(), rf(), st(digest="d9"), "d1", None, id="up-to-date-by-listing"),
        # Without --only-newer a remote copy newer than the local one is "newer" too.
        pytest.param(lf(mtime=T - 120), rf(), st(), "d1", None, id="plain-mirror-same-bytes"),
    ],
)
def test_need_transfer_with_the_state(
    local: LocalFile,
    remote: RemoteFile | None,
    state: StateEntry | None,
    digest: str | None,
    expected: Reason | Pending | None,
) -> None:
    only_newer = local.mtime >= T
    got = need_transfer(local, remote, only_newer=only_newer, state=state, digest=digest)
    assert got is expected


def test_plan_skip_moves_uploads_to_skipped() -> None:
    plan = make_plan(local_tree({"a": 1, "b": 2, "c": 3}), remote_tree({"c": 3}))
    plan.skip(["a"])
    assert [u.path for u in plan.uploads] == ["b"]
    assert plan.skipped == ["a", "c"]


# --- --verify: what is compared, and what a comparison changes -----------------------------


@pytest.mark.parametrize(
    ("local", "remote", "compared"),
    [
        pytest.param({"a": (5, T)}, {"a": (5, T)}, ["a"], id="unchanged-by-time"),
        pytest.param({"a": (5, T + 99)}, {"a": (5, T)}, ["a"], id="newer-same-size"),
        pytest.param({"a": (5, T - 99)}, {"a": (5, T)}, ["a"], id="older-same-size"),
        pytest.param({"a": (5, T)}, {"a": (6, T)}, [], id="size-differs"),
        pytest.param({"a": (5, T)}, {}, [], id="not-on-server"),
        pytest.param({"a": (5, T + 99)}, {"a": (None, None)}, ["a"], id="size-unknown"),
    ],
)
def test_content_candidates_are_files_the_server_holds_at_the_same_size(
    local: dict[str, tuple[int, float]],
    remote: dict[str, tuple[int | None, float | None]],
    compared: list[str],
) -> None:
    ltree = local_tree({p: size for p, (size, _) in local.items()})
    for p, (size, mtime) in local.items():
        ltree.files[p] = lf(p, size, mtime)
    rtree = remote_tree({})
    for p, (rsize, rmtime) in remote.items():
        rtree.files[p] = rf(p, rsize, rmtime)
    assert content_candidates(make_plan(ltree, rtree), rtree) == compared


def test_settle_skips_the_same_and_uploads_what_differs_largest_first() -> None:
    local = local_tree({"same-but-newer": 1, "edited-there": 2, "new": 3, "big-edited": 9})
    local.files["same-but-newer"] = lf("same-but-newer", 1, T + 99)
    remote = remote_tree({"same-but-newer": 1, "edited-there": 2, "big-edited": 9})
    plan = make_plan(local, remote)
    assert plan.skipped == ["big-edited", "edited-there"]
    plan.settle(
        ["same-but-newer"],
        [
            Upload(p, local.files[p].size, Reason.CONTENT, local.files[p])
            for p in ("edited-there", "big-edited")
        ],
    )
    assert [(u.path, u.reason) for u in plan.uploads] == [
        ("big-edited", Reason.CONTENT),
        ("new", Reason.NEW),
        ("edited-there", Reason.CONTENT),
    ]
    assert plan.skipped == ["same-but-newer"]


def test_protected_paths_are_never_deleted() -> None:
    # A directory SRC could not read: what the server holds under it stays.
    local = local_tree({"keep.txt": 1})
    remote = remote_tree({"keep.txt": 1, "locked/a.txt": 1, "gone.txt": 1})
    plan = make_plan(local, remote, PlanOptions(delete=True, protected=("locked",)))
    assert plan.delete_files == ["gone.txt"]
    assert plan.delete_dirs == []


# --- make_plan ---------------------------------------------------------------------------


def test_plan_uploads_new_and_changed_and_skips_the_rest() -> None:
    local = local_tree({"a.txt": 10, "b.txt": 20, "c.txt": 30})
    local.files["c.txt"] = lf("c.txt", 30, T + 10)
    remote = remote_tree({"a.txt": 10, "b.txt": 99, "c.txt": 30})
    plan = make_plan(local, remote)
    assert {u.path: u.reason for u in plan.uploads} == {"b.txt": Reason.SIZE, "c.txt": Reason.NEWER}
    assert plan.skipped == ["a.txt"]
    assert plan.mkdirs == []
    assert plan.conflicts == []
    assert plan.delete_files == plan.delete_dirs == []
    assert plan.upload_bytes == 50


def test_plan_on_a_missing_dst_uploads_everything() -> None:
    local = local_tree({"index.html": 5, "css/site.css": 6}, {"empty"})
    plan = make_plan(local, RemoteTree(exists=False))
    assert sorted(u.path for u in plan.uploads) == ["css/site.css", "index.html"]
    assert all(u.reason is Reason.NEW for u in plan.uploads)
    assert plan.mkdirs == ["css", "empty"]


def test_uploads_go_largest_first() -> None:
    sizes = {"small.txt": 1, "big.bin": 4_000_000, "mid/a.css": 500, "mid/b.css": 500, "z": 0}
    plan = make_plan(local_tree(sizes), RemoteTree(exists=False))
    assert [u.path for u in plan.uploads] == ["big.bin", "mid/a.css", "mid/b.css", "small.txt", "z"]
    assert [u.size for u in plan.uploads] == sorted(sizes.values(), reverse=True)


@pytest.mark.parametrize("reverse", [False, True])
def test_uploads_of_one_size_go_in_path_order_whatever_the_scan_order(reverse: bool) -> None:
    # The scan's order is the file system's; the plan's must not be.
    paths = ["b/x", "a", "b-c", "b", "a/z", "c"]
    sizes = {p: (7 if p.startswith("b") else 3) for p in (paths[::-1] if reverse else paths)}
    plan = make_plan(local_tree(sizes), RemoteTree(exists=False))
    assert [u.path for u in plan.uploads] == ["b", "b-c", "b/x", "a", "a/z", "c"]
    settled = make_plan(local_tree(sizes), RemoteTree(exists=False))
    settled.settle([], [Upload("d", 5, Reason.CONTENT, lf("d", 5))])
    assert [u.path for u in settled.uploads] == ["b", "b-c", "b/x", "d", "a", "a/z", "c"]


def test_mkdirs_come_parents_first() -> None:
    local = local_tree(dirs={"a/b/c/d", "z", "m/n", "a/b2"})
    remote = remote_tree(dirs={"m", "a"})
    plan = make_plan(local, remote)
    assert plan.mkdirs == ["z", "a/b", "a/b2", "m/n", "a/b/c", "a/b/c/d"]
    for i, d in enumerate(plan.mkdirs):
        parent = d.rpartition("/")[0]
        assert not parent or parent in remote.dirs or parent in plan.mkdirs[:i], d


def test_remote_directory_where_a_local_file_is_is_a_conflict() -> None:
    local = local_tree({"page.html": 10, "ok.txt": 1})
    remote = remote_tree(dirs={"page.html"})
    plan = make_plan(local, remote)
    assert [c.path for c in plan.conflicts] == ["page.html"]
    assert "in the way" in plan.conflicts[0].why
    assert [u.path for u in plan.uploads] == ["ok.txt"]
    assert plan.skipped == []


def test_remote_link_where_a_local_file_is_is_a_conflict() -> None:
    plan = make_plan(local_tree({"x": 1}), remote_tree(others={"x"}), PlanOptions(delete=True))
    assert [c.path for c in plan.conflicts] == ["x"]
    assert plan.uploads == []
    assert plan.delete_files == []


def test_remote_file_where_a_local_directory_is() -> None:
    local = local_tree({"docs/a.txt": 1, "docs/sub/b.txt": 2})
    remote = remote_tree({"docs": 50})
    # Without --delete: the directory and everything under it cannot be made.
    plan = make_plan(local, remote)
    assert sorted(c.path for c in plan.conflicts) == ["docs", "docs/a.txt", "docs/sub/b.txt"]
    assert plan.uploads == []
    # With --delete: the file goes, then the directory is made and filled.
    plan = make_plan(local, remote, PlanOptions(delete=True))
    assert plan.conflicts == []
    assert plan.clear_first == ["docs"]  # removed before its directory is made
    assert "docs" not in plan.delete_files  # not with the deletions after the uploads
    assert plan.mkdirs == ["docs", "docs/sub"]
    assert sorted(u.path for u in plan.uploads) == ["docs/a.txt", "docs/sub/b.txt"]


def test_no_delete_without_the_option() -> None:
    plan = make_plan(local_tree({"a": 1}), remote_tree({"a": 1, "stale": 2}, {"old"}))
    assert plan.delete_files == []
    assert plan.delete_dirs == []


def test_delete_lists_only_remote_only_paths_that_are_not_excluded() -> None:
    local = local_tree({"a.txt": 1, "keep/b.txt": 2})
    remote = remote_tree(
        {
            "a.txt": 1,
            "keep/b.txt": 2,
            "stale.txt": 3,
            "keep/stale too.txt": 4,
            ".htaccess": 5,  # excluded by -X '.*'
            "keep/.user.ini": 6,  # excluded
            ".well-known/acme/token": 7,  # under an excluded directory
        }
    )
    plan = make_plan(local, remote, PlanOptions(delete=True, excluded=dotted))
    assert plan.delete_files == ["keep/stale too.txt", "stale.txt"]
    assert plan.delete_dirs == []
    assert plan.uploads == []


def test_delete_removes_directories_children_first_and_only_when_emptied() -> None:
    local = local_tree({"site/index.html": 1})
    remote = remote_tree(
        {
            "site/index.html": 1,
            "old/a.txt": 1,
            "old/sub/b.txt": 1,
            "old/sub/deep/c.txt": 1,
            "legacy/.htaccess": 1,  # excluded: legacy/ is not emptied, so it stays
            "legacy/gone.txt": 1,
        },
        dirs={"old/sub/deep/empty", "zz"},
    )
    plan = make_plan(local, remote, PlanOptions(delete=True, excluded=dotted))
    assert plan.delete_files == [
        "legacy/gone.txt",
        "old/a.txt",
        "old/sub/b.txt",
        "old/sub/deep/c.txt",
    ]
    assert plan.delete_dirs == ["old/sub/deep/empty", "old/sub/deep", "old/sub", "old", "zz"]
    assert "legacy" not in plan.delete_dirs
    # Every directory comes after everything inside it.
    for i, d in enumerate(plan.delete_dirs):
        assert not any(later.startswith(d + "/") for later in plan.delete_dirs[i + 1 :]), d


def test_delete_keeps_directories_holding_remote_links() -> None:
    local = local_tree({"a": 1})
    remote = remote_tree({"a": 1}, others={"old/link"})
    plan = make_plan(local, remote, PlanOptions(delete=True))
    assert plan.delete_dirs == []
    assert plan.delete_files == []


def test_make_plan_does_not_change_its_inputs() -> None:
    local = local_tree({"a": 1, "d/b": 2})
    remote = remote_tree({"x": 1}, {"old"})
    before = (dict(local.files), set(local.dirs), dict(remote.files), set(remote.dirs))
    make_plan(local, remote, PlanOptions(delete=True))
    assert (dict(local.files), set(local.dirs), dict(remote.files), set(remote.dirs)) == before


# --- --site-symlink: links inside SRC made as links --------------------------------------

ROOT = "/www"  # DST's absolute path on the server
LINKED = {"v2/index.html": 10, "v2/css/site.css": 5, "index.html": 7}
# What the scan finds when it follows the links: their content under their own paths.
FOLLOWED = {"latest/index.html": 10, "latest/css/site.css": 5, "home.html": 7}


def linked_tree(extra_links: dict[str, tuple[str, bool]] | None = None) -> LocalTree:
    tree = local_tree({**LINKED, **FOLLOWED})
    links = {"latest": ("v2", True), "home.html": ("index.html", False), **(extra_links or {})}
    tree.links = {p: LocalLink(p, t, d) for p, (t, d) in links.items()}
    return tree


def with_links(remote: RemoteTree, links: dict[str, str | None]) -> RemoteTree:
    remote.others |= set(links)
    remote.links = dict(links)
    return remote


@pytest.mark.parametrize(
    ("remote", "links", "kept", "copies"),
    [
        pytest.param(
            remote_tree(LINKED),
            [Link("home.html", "/www/index.html", False), Link("latest", "/www/v2", False)],
            [],
            [],
            id="new",
        ),
        pytest.param(
            with_links(remote_tree(LINKED), {"latest": "/www/v2", "home.html": "/www/index.html"}),
            [],
            ["home.html", "latest"],
            [],
            id="already-there",
        ),
        pytest.param(
            with_links(remote_tree(LINKED), {"latest": "/www/v1", "home.html": None}),
            [Link("home.html", "/www/index.html", True), Link("latest", "/www/v2", True)],
            [],
            [],
            id="elsewhere-or-unknown-target-replaced",
        ),
        pytest.param(
            remote_tree({**LINKED, **FOLLOWED}),
            [],
            [],
            ["home.html", "latest"],
            id="real-copies-on-the-server-stay-copies",
        ),
    ],
)
def test_plan_links_decides_each_link(
    remote: RemoteTree, links: list[Link], kept: list[str], copies: list[str]
) -> None:
    made, ok, as_copies = plan_links(linked_tree(), remote, ROOT)
    assert (made, ok, [p for p, _ in as_copies]) == (links, kept, copies)


@pytest.mark.parametrize(
    ("link", "root", "why"),
    [
        pytest.param(("gone", ("nowhere", True)), ROOT, "not mirrored", id="target-excluded"),
        pytest.param(("new page.html", ("index.html", False)), ROOT, "white space", id="space"),
        pytest.param(("page.html", ("index.html", False)), "/my site", "white space", id="root"),
    ],
)
def test_links_that_go_up_as_copies(
    link: tuple[str, tuple[str, bool]], root: str, why: str
) -> None:
    path, target = link
    _, _, copies = plan_links(linked_tree({path: target}), remote_tree(LINKED), root)
    assert [(p, why in w) for p, w in copies if p == path] == [(path, True)]


def test_a_link_inside_a_linked_directory_comes_with_it() -> None:
    tree = linked_tree({"latest/home.html": ("index.html", False)})
    made, _, copies = plan_links(tree, remote_tree(LINKED), ROOT)
    assert [lk.path for lk in made] == ["home.html", "latest"]
    assert copies == []


def test_content_under_links_is_held_back_for_a_server_that_refuses() -> None:
    plan = make_plan(linked_tree(), remote_tree(LINKED), PlanOptions(link_root=ROOT))
    assert plan.uploads == []
    assert sorted(plan.skipped) == sorted(LINKED)
    assert plan.mkdirs == []
    instead = plan.fallback(["latest"])
    assert instead.mkdirs == ["latest", "latest/css"]
    assert sorted(u.path for u in instead.uploads) == ["latest/css/site.css", "latest/index.html"]
    assert all(u.reason is Reason.NEW for u in instead.uploads)
    assert [u.path for u in plan.fallback(["home.html"]).uploads] == ["home.html"]


def test_without_the_option_links_are_content() -> None:
    plan = make_plan(linked_tree(), remote_tree(LINKED))
    assert plan.links == []
    assert sorted(u.path for u in plan.uploads) == sorted(FOLLOWED)


def test_a_kept_link_holds_nothing_back_and_nothing_is_deleted_through_it() -> None:
    # MLSD of latest/ follows the link: the server seems to hold latest/* as files.
    remote = with_links(
        remote_tree({**LINKED, "latest/index.html": 10, "latest/old.html": 3}),
        {"latest": "/www/v2", "home.html": "/www/index.html"},
    )
    plan = make_plan(linked_tree(), remote, PlanOptions(delete=True, link_root=ROOT))
    assert plan.links == []
    assert plan.held is None
    assert plan.links_kept == ["home.html", "latest"]
    assert plan.uploads == []
    assert plan.conflicts == []
    assert plan.delete_files == []
    assert plan.delete_dirs == []


def test_delete_removes_the_servers_links_that_src_lacks_not_their_targets() -> None:
    local = local_tree(LINKED)  # latest and home.html are gone from SRC
    remote = with_links(
        remote_tree({**LINKED, "old/x": 1, "latest/index.html": 10}),
        {"latest": "/www/v2", "home.html": "/www/index.html", "old/link": "/www/v2", ".hid": "/"},
    )
    plan = make_plan(local, remote, PlanOptions(delete=True, excluded=dotted, link_root=ROOT))
    assert plan.delete_files == ["home.html", "latest", "old/link", "old/x"]
    assert plan.delete_dirs == ["old"]  # its link went too
    # Without the option the server's links are never touched.
    plan = make_plan(local, remote, PlanOptions(delete=True, excluded=dotted))
    assert "latest" not in plan.delete_files
    assert "old" not in plan.delete_dirs
