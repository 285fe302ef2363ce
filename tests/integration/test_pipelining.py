"""Pipelined commands against the real ProFTPD: many at once, long lines, in order."""

from __future__ import annotations

from tests.integration.sessions import open_session
from tests.servers.proftpd import ProftpdServer


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
