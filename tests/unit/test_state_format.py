"""The state file's format: what load() accepts, what dump() writes, and the digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import xxhash

from asyncmirror import digests
from asyncmirror.state import VERSION, StateEntry, StateError, dump, load


def doc(version: int, files: dict[str, Any]) -> bytes:
    return json.dumps({"version": version, "tool": "asyncmirror", "files": files}).encode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            doc(2, {"a.txt": {"size": 3, "mtime": 1.5, "xxh3_128": "ab"}}),
            {"a.txt": StateEntry(3, 1.5, "ab", "xxh3_128")},
        ),
        (  # asyncmirror 0.1 wrote version 1 with SHA-256: still read
            doc(1, {"a.txt": {"size": 3, "mtime": 2, "sha256": "cd"}}),
            {"a.txt": StateEntry(3, 2.0, "cd", "sha256")},
        ),
        (  # version 2 may carry both kinds (entries not re-uploaded since 0.1)
            doc(
                2,
                {
                    "new": {"size": 1, "mtime": 1.0, "xxh3_128": "x"},
                    "old": {"size": 2, "mtime": 2.0, "sha256": "s"},
                },
            ),
            {"new": StateEntry(1, 1.0, "x", "xxh3_128"), "old": StateEntry(2, 2.0, "s", "sha256")},
        ),
        (doc(2, {}), {}),
    ],
    ids=["v2", "v1-sha256", "v2-mixed", "empty"],
)
def test_load_reads_both_versions(data: bytes, expected: dict[str, StateEntry]) -> None:
    assert load(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        json.dumps([1, 2]).encode(),
        doc(3, {}),  # from the future
        doc(2, {"a": {"size": 1, "mtime": 1.0}}),  # no digest
        doc(2, {"a": {"size": 1, "mtime": 1.0, "md5": "x"}}),  # an unknown one
        doc(2, {"a": {"size": 1, "mtime": 1.0, "sha256": "s", "xxh3_128": "x"}}),  # two
        doc(2, {"a": {"size": "1", "mtime": 1.0, "xxh3_128": "x"}}),
        doc(2, {"a": {"size": 1, "mtime": 1.0, "xxh3_128": 5}}),
        doc(2, {"a": "nope"}),
        json.dumps({"version": 2, "files": []}).encode(),
    ],
)
def test_load_refuses_what_it_did_not_write(data: bytes) -> None:
    with pytest.raises(StateError):
        load(data)


def test_dump_writes_version_2_keyed_by_each_entry_s_algorithm() -> None:
    entries = {
        "b.txt": StateEntry(2, 2.0, "s", "sha256"),
        "a.txt": StateEntry(1, 1.25, "x"),
    }
    written = json.loads(dump(entries))
    assert written == {
        "version": VERSION,
        "tool": "asyncmirror",
        "files": {
            "a.txt": {"size": 1, "mtime": 1.25, "xxh3_128": "x"},
            "b.txt": {"size": 2, "mtime": 2.0, "sha256": "s"},
        },
    }
    assert list(written["files"]) == ["a.txt", "b.txt"]  # sorted: stable diffs
    assert load(dump(entries)) == entries


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024 - 1, 1024 * 1024, 3 * 1024 * 1024 + 7])
@pytest.mark.parametrize(
    ("algorithm", "reference"),
    [
        ("xxh3_128", lambda b: xxhash.xxh3_128(b).hexdigest()),
        ("sha256", lambda b: hashlib.sha256(b).hexdigest()),
    ],
)
def test_of_file_equals_the_digest_of_the_bytes(
    tmp_path: Path, size: int, algorithm: str, reference: Any
) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert digests.of_file(str(path), algorithm) == reference(data)
    hasher = digests.new(algorithm)
    for start in range(0, size, 1000):
        hasher.update(memoryview(data)[start : start + 1000])
    assert hasher.hexdigest() == reference(data)


def test_new_entries_use_the_default_algorithm() -> None:
    assert digests.DEFAULT == "xxh3_128"
    assert StateEntry(1, 1.0, "x").algorithm == digests.DEFAULT
    assert set(digests.ALGORITHMS) == {"xxh3_128", "sha256"}
