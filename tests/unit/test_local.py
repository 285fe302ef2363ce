"""Scanning SRC: what goes into LocalTree, what becomes a problem line."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from asyncmirror.errors import ScanStopped, UsageError
from asyncmirror.filters import FilterSet, Rule
from asyncmirror.local import display_path, scan
from asyncmirror.names import STATE_NAME, TEMP_PREFIX

_REAL_SCANDIR = os.scandir  # kept before any test patches it

SEED = FilterSet.from_rules([Rule("exclude", ".*", "glob"), Rule("exclude", ".*/", "glob")])
NONE = FilterSet.empty()


def write(root: Path, rel: str, data: bytes = b"") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_plain_tree(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", b"hello")
    write(tmp_path, "sub/b.bin", b"\0" * 1000)
    tree = scan(str(tmp_path), NONE)
    assert tree.root == str(tmp_path)
    assert set(tree.files) == {"a.txt", "sub/b.bin"}
    assert tree.dirs == {"sub"}
    assert tree.problems == []
    a = tree.files["a.txt"]
    st = os.stat(tmp_path / "a.txt")
    assert (a.path, a.size, a.mtime) == ("a.txt", 5, st.st_mtime)
    assert isinstance(a.mtime, float)
    assert a.abspath == str(tmp_path / "a.txt")
    assert tree.files["sub/b.bin"].size == 1000


@pytest.mark.parametrize(
    "rel",
    [
        "with space.txt",
        "dir with space/file  two.txt",
        "café/menü.txt",
        "日本語/ファイル.txt",
        "emoji 🎉.txt",
        "-leading-dash",
        "-dir/--x",
        "tab\tname",
        "percent%20and#hash?.txt",
        "back\\slash",
    ],
)
def test_names(tmp_path: Path, rel: str) -> None:
    write(tmp_path, rel, b"x")
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {rel}
    assert tree.files[rel].abspath == str(tmp_path / rel)
    assert tree.problems == []


def test_empty_files_and_nested_empty_dirs(tmp_path: Path) -> None:
    write(tmp_path, "empty")
    (tmp_path / "e1/e2/e3").mkdir(parents=True)
    (tmp_path / "lonely").mkdir()
    tree = scan(str(tmp_path), NONE)
    assert tree.files["empty"].size == 0
    assert tree.dirs == {"e1", "e1/e2", "e1/e2/e3", "lonely"}
    assert "" not in tree.dirs


def test_seed_rules_leave_out_dotfiles_at_any_depth(tmp_path: Path) -> None:
    for rel in [".env", "a/.hidden", "a/b/.htaccess", ".git/config", "a/.cache/x/y", "ok.txt"]:
        write(tmp_path, rel)
    write(tmp_path, "a/b/c.txt")
    (tmp_path / "a/.empty-dot-dir").mkdir()
    tree = scan(str(tmp_path), SEED)
    assert set(tree.files) == {"ok.txt", "a/b/c.txt"}
    assert tree.dirs == {"a", "a/b"}
    assert tree.problems == []


def test_excluded_directory_is_not_entered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "keep/a.txt")
    write(tmp_path, "skip/deep/b.txt")
    opened: list[str] = []
    real = os.scandir

    def recording(path: str) -> object:
        opened.append(path)
        return real(path)

    monkeypatch.setattr(os, "scandir", recording)
    tree = scan(str(tmp_path), FilterSet.from_rules([Rule("exclude", "skip/", "glob")]))
    assert set(tree.files) == {"keep/a.txt"}
    assert not any("skip" in p for p in opened)


def test_include_rules_still_descend(tmp_path: Path) -> None:
    write(tmp_path, "a/b/keep.txt")
    write(tmp_path, "a/b/drop.log")
    tree = scan(str(tmp_path), FilterSet.from_rules([Rule("include", "*.txt", "glob")]))
    assert set(tree.files) == {"a/b/keep.txt"}
    assert tree.dirs == {"a", "a/b"}


def test_own_files_are_never_scanned(tmp_path: Path) -> None:
    write(tmp_path, STATE_NAME)
    write(tmp_path, f"sub/{TEMP_PREFIX}1234-x.txt")
    write(tmp_path, f"sub/{STATE_NAME}")  # only the root one is asyncmirror's
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {f"sub/{STATE_NAME}"}


def test_file_symlink_uses_target_size_and_mtime(tmp_path: Path) -> None:
    target = write(tmp_path, "real/data.bin", b"x" * 123)
    os.utime(target, (1_600_000_000.5, 1_600_000_000.5))
    (tmp_path / "link.bin").symlink_to("real/data.bin")
    tree = scan(str(tmp_path), NONE)
    link = tree.files["link.bin"]
    assert (link.size, link.mtime) == (123, 1_600_000_000.5)
    assert link.abspath == str(tmp_path / "link.bin")  # the link; open() follows it
    assert Path(link.abspath).read_bytes() == b"x" * 123


def test_directory_symlink_is_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "x/y.txt", b"1")
    src = tmp_path / "src"
    src.mkdir()
    (src / "linked").symlink_to(outside, target_is_directory=True)
    tree = scan(str(src), NONE)
    assert set(tree.files) == {"linked/x/y.txt"}
    assert tree.dirs == {"linked", "linked/x"}
    assert tree.files["linked/x/y.txt"].abspath == str(src / "linked/x/y.txt")


def test_a_link_to_a_directory_it_is_inside_is_a_loop_noticed_once(tmp_path: Path) -> None:
    write(tmp_path, "a/b/f.txt")
    (tmp_path / "a/b/up").symlink_to("../..", target_is_directory=True)  # back to the root
    (tmp_path / "a/self").symlink_to(".", target_is_directory=True)
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {"a/b/f.txt"}
    assert tree.dirs == {"a", "a/b"}
    assert tree.problems == []  # not failures: nothing meant to be uploaded was lost
    notices = dict(tree.notices)
    assert set(notices) == {"a/b/up", "a/self"}
    assert notices["a/b/up"] == "symbolic link to SRC itself, which holds it: a loop"
    assert notices["a/self"] == "symbolic link to a, which holds it: a loop"


def test_every_link_to_a_directory_is_uploaded_under_its_own_path(tmp_path: Path) -> None:
    """As rsync -L: "latest -> v2" on a website must be a directory on the server."""
    shared = tmp_path / "shared"
    write(shared, "s.txt")
    src = tmp_path / "src"
    write(src, "v2/index.html")
    (src / "l1").symlink_to(shared)
    (src / "l2").symlink_to(shared)
    (src / "latest").symlink_to("v2")
    (src / "m").mkdir()
    (src / "m/deeper-link").symlink_to("../v2")
    tree = scan(str(src), NONE)
    assert set(tree.files) == {
        "v2/index.html",
        "l1/s.txt",
        "l2/s.txt",
        "latest/index.html",
        "m/deeper-link/index.html",
    }
    assert tree.dirs == {"v2", "l1", "l2", "latest", "m", "m/deeper-link"}
    assert tree.problems == []
    assert tree.notices == []
    assert tree.files["latest/index.html"].abspath == str(src / "latest/index.html")


def test_links_inside_src_are_recorded_with_their_targets_and_still_followed(
    tmp_path: Path,
) -> None:
    """--site-symlink: links into SRC become links; the rest stays content."""
    shared = tmp_path / "shared"
    write(shared, "s.txt")
    src = tmp_path / "src"
    write(src, "v2/index.html")
    write(src, "index.html")
    (src / "latest").symlink_to("v2")
    (src / "home.html").symlink_to("index.html")
    (src / "m").mkdir()
    (src / "m/up").symlink_to("../v2")
    (src / "abs").symlink_to(src / "v2")  # absolute, but inside
    (src / "chain").symlink_to("latest")  # a link to a link: the final target
    (src / "out").symlink_to(shared)
    (src / "m/self").symlink_to("..")  # a loop stays a notice
    tree = scan(str(src), NONE, links=True)
    assert {p: (lk.target, lk.is_dir) for p, lk in tree.links.items()} == {
        "latest": ("v2", True),
        "home.html": ("index.html", False),
        "m/up": ("v2", True),
        "abs": ("v2", True),
        "chain": ("v2", True),
    }
    assert "out" not in tree.links
    assert "latest/index.html" in tree.files
    assert "out/s.txt" in tree.files
    assert [p for p, _ in tree.notices] == ["m/self"]
    assert scan(str(src), NONE).links == {}  # only when asked


def test_broken_and_looping_symlinks_are_notices(tmp_path: Path) -> None:
    write(tmp_path, "ok.txt")
    (tmp_path / "dangling").symlink_to("does-not-exist")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/me").symlink_to("me")
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {"ok.txt"}
    assert tree.problems == []
    notices = dict(tree.notices)
    assert notices["dangling"] == "broken symbolic link"
    assert "loop" in notices["sub/me"]


def test_excluded_broken_symlink_is_silent(tmp_path: Path) -> None:
    (tmp_path / ".dangling").symlink_to("nowhere")
    tree = scan(str(tmp_path), SEED)
    assert tree.problems == []
    assert tree.notices == []


def test_fifo_is_skipped_with_a_notice(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-pipe").symlink_to("pipe")
    tree = scan(str(tmp_path), NONE)
    assert tree.files == {}
    assert tree.problems == []
    notices = dict(tree.notices)
    assert notices["pipe"].startswith("a FIFO")
    assert notices["to-pipe"].startswith("symbolic link to a FIFO")


@pytest.mark.parametrize("name", ["line\nbreak.txt", "carriage\rreturn.txt"])
def test_names_ftp_cannot_carry(tmp_path: Path, name: str) -> None:
    write(tmp_path, name)
    write(tmp_path, "ok.txt")
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {"ok.txt"}
    [(shown, why)] = tree.problems
    assert "\n" not in shown  # printable on one line
    assert "\r" not in shown
    assert "line break" in why


def test_directory_name_with_line_break_is_not_entered(tmp_path: Path) -> None:
    write(tmp_path, "bad\ndir/inside.txt")
    tree = scan(str(tmp_path), NONE)
    assert tree.files == {}
    assert tree.dirs == set()
    assert tree.problems == [("bad\\ndir", tree.problems[0][1])]


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses non-UTF-8 names")
def test_name_not_utf8(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")  # Latin-1 "café"
    try:
        fd = os.open(raw, os.O_CREAT | os.O_WRONLY, 0o644)
    except OSError:
        pytest.skip("the file system refuses non-UTF-8 names")
    os.close(fd)
    write(tmp_path, "ok.txt")
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {"ok.txt"}
    assert tree.problems == [("caf\\xe9.txt", "name is not valid UTF-8")]


def test_unreadable_directory_is_a_problem_and_the_scan_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulated: the tests may run as root, for whom chmod 000 changes nothing.
    write(tmp_path, "locked/secret.txt")
    write(tmp_path, "open/a.txt")
    real = os.scandir
    locked = str(tmp_path / "locked")

    def scandir(path: str) -> object:
        if path == locked:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {"open/a.txt"}
    assert tree.dirs == {"locked", "open"}  # it exists; its contents are unknown
    assert tree.problems == [("locked", "directory cannot be read: permission denied")]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_unreadable_directory_for_real(tmp_path: Path) -> None:
    write(tmp_path, "locked/secret.txt")
    (tmp_path / "locked").chmod(0)
    try:
        tree = scan(str(tmp_path), NONE)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert tree.files == {}
    assert tree.problems == [("locked", "directory cannot be read: permission denied")]


def test_unreadable_root_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def scandir(path: str) -> object:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UsageError, match="cannot be read"):
        scan(str(tmp_path), NONE)


def test_missing_root(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(UsageError) as info:
        scan(missing, NONE)
    assert info.value.message == f"source directory {missing!r} does not exist"
    assert info.value.hint
    assert info.value.exit_code == 2


def test_root_below_a_file(tmp_path: Path) -> None:
    write(tmp_path, "file")
    with pytest.raises(UsageError, match="does not exist"):
        scan(str(tmp_path / "file" / "sub"), NONE)


def test_root_is_a_file(tmp_path: Path) -> None:
    path = str(write(tmp_path, "file.txt"))
    with pytest.raises(UsageError) as info:
        scan(path, NONE)
    assert info.value.message == f"source directory {path!r} is not a directory"
    assert info.value.hint


def test_root_is_a_symlink_to_a_directory(tmp_path: Path) -> None:
    write(tmp_path, "real/a.txt")
    (tmp_path / "alias").symlink_to("real")
    tree = scan(str(tmp_path / "alias"), NONE)
    assert set(tree.files) == {"a.txt"}
    assert tree.files["a.txt"].abspath == str(tmp_path / "alias" / "a.txt")


def test_relative_root_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "site/index.html")
    monkeypatch.chdir(tmp_path)
    tree = scan("site", NONE)
    assert tree.root == str(tmp_path / "site")
    assert tree.files["index.html"].abspath == str(tmp_path / "site" / "index.html")


def _stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back  # type: ignore[assignment]
    return depth


def test_deep_tree_has_no_recursion_limit(tmp_path: Path) -> None:
    # A tree deeper than the recursion limit allows (kept small: os.makedirs and
    # pytest's cleanup are themselves recursive).
    depth = 200
    path = tmp_path
    for _ in range(depth):
        path = path / "d"
        path.mkdir()
    write(path, "leaf.txt")
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 50)
    try:
        tree = scan(str(tmp_path), NONE)
    finally:
        sys.setrecursionlimit(old)
    rel = "/".join(["d"] * depth)
    assert set(tree.files) == {rel + "/leaf.txt"}
    assert len(tree.dirs) == depth


class _VanishingIterator:
    """A scandir iterator that deletes each *victim* just before handing out its entry."""

    def __init__(self, path: str, victims: set[str]) -> None:
        self._it = _REAL_SCANDIR(path)
        self._victims = victims

    def __enter__(self) -> _VanishingIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self._it.close()

    def __iter__(self) -> _VanishingIterator:
        return self

    def __next__(self) -> os.DirEntry[str]:
        entry = next(self._it)
        if entry.name in self._victims:
            os.unlink(entry.path)
        return entry


def test_file_vanishing_during_the_scan_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "stays.txt")
    write(tmp_path, "gone.txt")
    monkeypatch.setattr(os, "scandir", lambda p: _VanishingIterator(p, {"gone.txt"}))
    tree = scan(str(tmp_path), NONE)
    assert set(tree.files) == {"stays.txt"}
    assert tree.problems == []


@pytest.mark.parametrize(
    ("relpath", "shown"),
    [
        ("plain/a.txt", "plain/a.txt"),
        ("café", "café"),
        ("a\nb\rc", "a\\nb\\rc"),
        (os.fsdecode(b"caf\xe9"), "caf\\xe9"),
    ],
)
def test_display_path(relpath: str, shown: str) -> None:
    assert display_path(relpath) == shown


@pytest.mark.parametrize(
    ("enough", "count_dirs", "calls"),
    # The tree keeps 3 files and 2 directories.
    [
        (0, True, 1),
        (1, True, 1),
        (4, True, 1),
        (5, True, 1),
        (6, True, 0),
        (3, False, 1),
        (4, False, 0),
    ],
)
def test_on_enough_is_called_once_when_that_many_paths_are_kept(
    tmp_path: Path, enough: int, count_dirs: bool, calls: int
) -> None:
    for rel in ("a.txt", "b.txt", "sub/c.txt", "sub/deeper/.hidden"):
        write(tmp_path, rel)
    seen: list[int] = []
    tree = scan(
        str(tmp_path),
        SEED,
        enough=enough,
        on_enough=lambda: seen.append(1),
        count_dirs=count_dirs,
    )
    assert len(tree.files) + len(tree.dirs) == 5
    assert len(seen) == calls


class _CountingFilters:
    """Excludes nothing; counts the entries the scan has looked at."""

    def __init__(self) -> None:
        self.looked_at = 0

    def excludes(self, relpath: str, *, is_dir: bool) -> bool:
        self.looked_at += 1
        return False


def test_on_enough_comes_before_a_large_flat_directory_is_read_to_its_end(
    tmp_path: Path,
) -> None:
    """The logins wait for on_enough: in a flat SRC of 200 files it must come at the
    8th file, not after the whole listing."""
    for i in range(200):
        write(tmp_path, f"f{i:03d}.txt")
    filters = _CountingFilters()
    looked_at_when_called: list[int] = []
    tree = scan(
        str(tmp_path),
        filters,  # type: ignore[arg-type]
        enough=8,
        on_enough=lambda: looked_at_when_called.append(filters.looked_at),
    )
    assert len(tree.files) == 200
    assert looked_at_when_called == [8]


def test_a_stopped_scan_ends_part_way(tmp_path: Path) -> None:
    # Set from on_enough, in the scan's own thread: where it stops is deterministic.
    for i in range(500):
        write(tmp_path, f"d/f{i:03}.txt")
    stop = threading.Event()
    with pytest.raises(ScanStopped) as info:
        scan(str(tmp_path), FilterSet.empty(), enough=10, on_enough=stop.set, stop=stop)
    assert 10 <= info.value.kept < 500


def test_a_scan_told_to_stop_before_it_starts_reads_nothing(tmp_path: Path) -> None:
    write(tmp_path, "a.txt")
    stop = threading.Event()
    stop.set()
    with pytest.raises(ScanStopped) as info:
        scan(str(tmp_path), FilterSet.empty(), stop=stop)
    assert info.value.kept == 0
