"""Pipelined commands against the real ProFTPD: many at once, long lines, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asyncmirror import Report, mirror
from tests.integration.sessions import open_session
from tests.servers.proftpd import ProftpdServer, RemoteDir


async def traced_mirror(
    proftpd: ProftpdServer, src: Path, dst: str, trace: list[str], **kwargs: Any
) -> Report:
    """mirror() of ``src`` to ``dst`` on ``proftpd``, every line sent and received in
    ``trace`` as ``"-> LINE"`` / ``"<- LINE"``."""
    return await mirror(
        str(src),
        dst,
        host=proftpd.host,
        port=proftpd.port,
        user=proftpd.user,
        password=proftpd.password,
        ca_file=str(proftpd.ca_file),
        timeout=20,
        trace=lambda direction, line: trace.append(f"{direction} {line}"),
        **kwargs,
    )


async def test_hundreds_of_long_pipelined_commands_all_get_their_reply(
    proftpd: ProftpdServer,
) -> None:
    # ProFTPD stalls when one TLS record carries more than ~4 KB of commands
    # (it leaves the rest unread inside OpenSSL); the session must split them.
    (proftpd.home / "pipelined").mkdir(exist_ok=True)
    (proftpd.home / "pipelined" / "present.txt").write_bytes(b"x")
    names = [f"/pipelined/{'n' * 80}-{i}" for i in range(600)]
    names[300] = "/pipelined/present.txt"
    session = await open_session(proftpd)
    try:
        replies = await session.pipeline([f"MLST {n}" for n in names])
    finally:
        await session.quit()
    assert len(replies) == len(names)
    assert [r.code for r in replies].count("550") == len(names) - 1
    assert replies[300].code == "250"
    assert "present.txt" in " ".join(replies[300].lines)


async def test_login_and_set_up_take_one_round_trip_on_proftpd(proftpd: ProftpdServer) -> None:
    # Three round trips before (USER; PASS; PBSZ/PROT/TYPE): two RTTs of every run.
    trace: list[str] = []
    session = await open_session(
        proftpd, trace=lambda direction, line: trace.append(f"{direction} {line}")
    )
    try:
        # The session works: the set-up's replies were all consumed, in order.
        assert (await session.command("NOOP")).code == "200"
    finally:
        await session.quit()
    start = trace.index(f"-> USER {proftpd.user}")
    first_reply = next(i for i, line in enumerate(trace) if line.startswith("<- 331"))
    sent_before_first_reply = trace[start:first_reply]
    assert sent_before_first_reply == [
        f"-> USER {proftpd.user}",
        "-> PASS ****",
        "-> PBSZ 0",
        "-> PROT P",
        "-> TYPE I",
        "-> PWD",
    ], trace
    assert proftpd.password not in "\n".join(trace)


async def test_uploads_send_the_next_passive_command_ahead_and_their_checks_cost_no_round_trip(
    proftpd: ProftpdServer, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    # The speed of a run on ProFTPD: the next EPSV goes out before the 226 of the
    # upload before it, and each upload's checks (MFMT, SIZE) go in the same
    # write as the next EPSV or the next STOR, never in a round trip of their own.
    src = tmp_path / "src"
    src.mkdir()
    names = [f"f{i}.txt" for i in range(6)]
    for name in names:
        (src / name).write_bytes(name.encode() * 1000)
    trace: list[str] = []
    report = await traced_mirror(proftpd, src, remote_dir.name, trace, jobs=1, state=False)
    assert report.uploaded == len(names)
    for name in names:
        assert (remote_dir.path / name).read_bytes() == (src / name).read_bytes()

    # A passive command sent between a STOR and the 226 that ends it, for every
    # upload but the last (nothing follows it).
    ahead = 0
    in_transfer = False
    for line in trace:
        if line.startswith("-> STOR "):
            in_transfer = True
        elif in_transfer and line.startswith("<- 226"):
            in_transfer = False
        elif in_transfer and line in ("-> EPSV", "-> PASV"):
            ahead += 1
    assert ahead == len(names) - 1, trace

    # Each check is followed, with no reply read in between, by more commands:
    # the EPSV or the STOR that share its write.  Only the last upload's stand alone.
    sizes = [i for i, line in enumerate(trace) if line.startswith("-> SIZE ")]
    assert len(sizes) == len(names), trace
    for i in sizes[:-1]:
        assert trace[i + 1].startswith(("-> EPSV", "-> PASV", "-> STOR ")), trace[i - 2 : i + 3]


async def test_a_large_tree_is_not_asked_about_below_a_missing_directory(
    proftpd: ProftpdServer, remote_dir: RemoteDir, tmp_path: Path
) -> None:
    # A deployed site gains a section of 700 directories: everything below the
    # new top directory is new, whatever MLST would say -- only the shallowest
    # directories are asked (first round), the rest not at all.  All goes up.
    src = tmp_path / "src"
    (src / "kept").mkdir(parents=True)
    (src / "kept" / "old.txt").write_bytes(b"old\n")

    assert (await traced_mirror(proftpd, src, remote_dir.name, [], jobs=2)).uploaded == 1
    for i in range(700):
        d = src / "new" / f"d{i:03}"
        d.mkdir(parents=True)
        (d / "f.txt").write_bytes(f"{i}\n".encode())
    trace: list[str] = []
    report = await traced_mirror(proftpd, src, remote_dir.name, trace, jobs=2)
    assert report.failed == []
    assert report.uploaded == 700
    for i in (0, 350, 699):
        assert (remote_dir.path / "new" / f"d{i:03}" / "f.txt").read_bytes() == f"{i}\n".encode()
    asked = [line for line in trace if line.startswith("-> MLST ") and "/new/" in line]
    # Without the first round: all 700.  With it: "new" and the shallowest of the
    # rest, up to 500 directories in all; none in the second round.
    assert 0 < len(asked) < 500, len(asked)
