"""Whole-site releases: names, what moves with a switch, the bursts and their replies."""

from __future__ import annotations

import pytest

from asyncmirror.entries import RemoteFile, RemoteTree
from asyncmirror.releases import (
    Copy,
    Layout,
    Rename,
    no_server_copy,
    read_burst,
    release_dirs_of,
    rollback_burst,
    seed_copies,
    seed_dirs,
    server_only,
    switch_burst,
    why_not_switchable,
)
from asyncmirror.replies import Reply


def test_the_releases_sit_beside_dst_under_names_apache_refuses() -> None:
    layout = Layout.of("/home/me/www/")
    assert layout == Layout(
        live="/home/me/www",
        next="/home/me/.htasyncmirror-next.www",
        prev="/home/me/.htasyncmirror-prev.www",
        out="/home/me/.htasyncmirror-out.www",
    )


@pytest.mark.parametrize(
    ("dst", "home", "refused"),
    [
        ("/www", "/", None),
        ("/home/me/www", "/home/me", None),
        ("/", "/", "root directory"),
        ("/home/me", "/home/me", "home directory"),
        ("/home/me/", "/home/me", "home directory"),
        ("www", None, "not an absolute path"),
    ],
)
def test_dst_that_renames_cannot_switch_is_refused_up_front(
    dst: str, home: str | None, refused: str | None
) -> None:
    why = why_not_switchable(dst, home)
    if refused is None:
        assert why is None
    else:
        assert why is not None
        assert refused in why


def _tree(files: list[str], dirs: list[str], others: list[str] = ()) -> RemoteTree:  # type: ignore[assignment]
    return RemoteTree(
        files={p: RemoteFile(p, 1, 0.0, 0.0) for p in files}, dirs=set(dirs), others=set(others)
    )


@pytest.mark.parametrize(
    ("live", "release", "delete_on", "moved"),
    [
        pytest.param(
            _tree(["index.html", ".htaccess", "css/a.css", "css/custom.css"], ["css", "uploads"]),
            ["index.html", "css/a.css"],
            False,
            [".htaccess", "css/custom.css", "uploads"],
            id="server-only-files-and-dirs-move",
        ),
        pytest.param(
            _tree(["index.html", "old.html", ".htaccess"], []),
            ["index.html"],
            True,
            [".htaccess"],
            id="with-delete-only-excluded-move",
        ),
        pytest.param(
            _tree(
                [
                    ".htasyncmirror-state.json",
                    ".asyncmirror-state.json",
                    "index.html",
                    "css/.htasyncmirror-tmp-x",
                    "css/.asyncmirror-tmp-y",
                ],
                ["css", ".htasyncmirror-lock"],
            ),
            ["index.html", "css/a.css"],
            False,
            [],
            id="own-entries-never-move",
        ),
        pytest.param(
            _tree(["index.html"], ["uploads"], others=["latest"]),
            ["index.html"],
            False,
            ["latest", "uploads"],
            id="links-move-too",
        ),
        pytest.param(
            _tree(["a/b/c.txt", "a/b/mine.txt", "a/x.txt"], ["a", "a/b"]),
            ["a/b/c.txt"],
            False,
            ["a/b/mine.txt", "a/x.txt"],
            id="nested",
        ),
    ],
)
def test_what_the_server_alone_holds_moves_with_the_switch(
    live: RemoteTree, release: list[str], delete_on: bool, moved: list[str]
) -> None:
    def movable(path: str, is_dir: bool) -> bool:
        return not delete_on or path.rpartition("/")[2].startswith(".")

    got = server_only(live, release, release_dirs_of(release), movable=movable)
    assert got == moved


def test_release_dirs_are_every_ancestor_of_a_release_file() -> None:
    assert release_dirs_of(["a/b/c.txt", "d.txt", "a/e.txt"]) == {"a", "a/b"}


def test_the_switch_moves_server_only_paths_first_then_swaps_in_two_renames() -> None:
    layout = Layout.of("/www")
    burst = switch_burst(layout, ["uploads", ".htaccess"], live_exists=True)
    assert burst == [
        Rename("/www/uploads", "/.htasyncmirror-next.www/uploads"),
        Rename("/www/.htaccess", "/.htasyncmirror-next.www/.htaccess"),
        Rename("/www", "/.htasyncmirror-prev.www"),
        Rename("/.htasyncmirror-next.www", "/www"),
    ]
    assert switch_burst(layout, [], live_exists=False) == [
        Rename("/.htasyncmirror-next.www", "/www")
    ]


def test_a_rollback_keeps_the_release_it_leaves_as_the_previous_one() -> None:
    layout = Layout.of("/www")
    assert rollback_burst(layout, ["uploads"]) == [
        Rename("/www/uploads", "/.htasyncmirror-prev.www/uploads"),
        Rename("/www", "/.htasyncmirror-out.www"),
        Rename("/.htasyncmirror-prev.www", "/www"),
        Rename("/.htasyncmirror-out.www", "/.htasyncmirror-prev.www"),
    ]


def R(code: str, text: str = "") -> Reply:
    return Reply(code, (text,))


def test_a_burst_reply_list_says_which_renames_were_done() -> None:
    renames = [Rename("/a", "/b"), Rename("/c", "/d"), Rename("/e", "/f")]
    result = read_burst(
        renames,
        [
            R("350"),
            R("250"),
            R("550", "/c: No such file"),
            R("503", "Bad sequence"),
            R("350"),
            R("553", "denied"),
        ],
    )
    assert result.done == (True, False, False)
    assert result.failed == [(renames[1], "550 /c: No such file"), (renames[2], "553 denied")]
    with pytest.raises(ValueError, match="need 6 replies"):
        read_burst(renames, [R("350")])


# --- seeding a first staging copy on the server (mod_copy) --------------------------------


def test_seed_copies_only_what_the_live_site_holds_with_a_time() -> None:
    layout = Layout.of("/www")
    live = RemoteTree(
        files={
            "a.html": RemoteFile("a.html", 5, 1_600_000_000.0, 1.0),
            "d/b.css": RemoteFile("d/b.css", 7, 1_600_000_100.0, 1.0),
            "no-time": RemoteFile("no-time", 1, None, 1.0),
        },
        dirs={"d", "server-only"},
    )
    copies = seed_copies(layout, live, ["d/b.css", "a.html", "new.html", "no-time"], "t1")
    assert [c.target for c in copies] == [
        "/.htasyncmirror-next.www/a.html",
        "/.htasyncmirror-next.www/d/b.css",
    ]
    assert copies[1].lines() == [
        "SITE CPFR /www/d/b.css",
        "SITE CPTO /.htasyncmirror-next.www/d/.htasyncmirror-tmp-t1-b.css",
        "MFMT 20200913122820 /.htasyncmirror-next.www/d/.htasyncmirror-tmp-t1-b.css",
    ]
    assert seed_dirs(live, ["d/e", "d", "new"]) == ["d"]


@pytest.mark.parametrize(
    ("codes", "copied"),
    [
        (("350", "250", "213"), True),
        (("350", "250", "500"), False),  # no time: it would look newer than SRC
        (("350", "550", "550"), False),
        (("550", "503", "550"), False),
    ],
)
def test_a_copy_counts_only_when_copied_and_stamped(codes: tuple[str, ...], copied: bool) -> None:
    assert Copy.copied([Reply(c, ("",)) for c in codes]) is copied


@pytest.mark.parametrize(
    ("code", "none"), [("500", True), ("502", True), ("350", False), ("550", False)]
)
def test_no_server_copy_is_an_unknown_command(code: str, none: bool) -> None:
    assert no_server_copy(Reply(code, ("",))) is none
