"""EarlyConnection: the CLI's control connection begun before the heavy imports."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from asyncmirror.early import EarlyConnection


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def wait_done(early: EarlyConnection) -> None:
    done = threading.Event()
    early.when_done(done.set)
    assert done.wait(10)


def test_connects_and_is_claimed_once_for_the_same_place(listener: socket.socket) -> None:
    port = port_of(listener)
    early = EarlyConnection("127.0.0.1", port, timeout=10)
    assert not early.claim("127.0.0.1", port + 1)  # another place: not this connection
    assert early.claim("127.0.0.1", port)
    assert not early.claim("127.0.0.1", port)  # only one session gets it
    wait_done(early)
    sock = early.take()
    try:
        peer, _ = listener.accept()
        with peer:
            peer.sendall(b"220 hello\r\n")
            assert sock.recv(100) == b"220 hello\r\n"
    finally:
        sock.close()
    with pytest.raises(ConnectionAbortedError):
        early.take()  # handed over already


def test_a_refused_connect_is_raised_by_take() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = port_of(probe)  # nothing listens once this is closed
    early = EarlyConnection("127.0.0.1", port, timeout=10)
    wait_done(early)
    with pytest.raises(ConnectionRefusedError):
        early.take()


def test_when_done_after_the_fact_calls_back_at_once(listener: socket.socket) -> None:
    early = EarlyConnection("127.0.0.1", port_of(listener), timeout=10)
    wait_done(early)
    calls: list[int] = []
    early.when_done(lambda: calls.append(1))
    assert calls == [1]
    early.close()
    with pytest.raises(ConnectionAbortedError):
        early.take()  # closed: the socket went with it


def test_close_before_use_closes_the_socket_and_stops_claims(listener: socket.socket) -> None:
    port = port_of(listener)
    early = EarlyConnection("127.0.0.1", port, timeout=10)
    wait_done(early)
    early.close()
    assert not early.claim("127.0.0.1", port)
    peer, _ = listener.accept()
    with peer:
        peer.settimeout(10)
        assert peer.recv(10) == b""  # the client side is closed: EOF


def test_take_before_the_connect_finished_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def slow_connect(address: tuple[str, int], timeout: float) -> socket.socket:
        release.wait(10)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", slow_connect)
    early = EarlyConnection("127.0.0.1", 21, timeout=10)
    with pytest.raises(BlockingIOError):
        early.take()
    release.set()
    wait_done(early)
    with pytest.raises(ConnectionRefusedError):
        early.take()


async def test_a_session_waiting_too_long_for_its_early_connection_times_out_and_closes_it(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    """Bounded by the session's timeout like any connect; the socket that connects
    afterwards is closed, not left holding a server process."""
    from asyncmirror.transport import open_control

    release = threading.Event()
    real_connect = socket.create_connection
    made: list[socket.socket] = []

    def slow_connect(address: tuple[str, int], timeout: float) -> socket.socket:
        release.wait(10)
        sock = real_connect(address, timeout=timeout)
        made.append(sock)
        return sock

    monkeypatch.setattr(socket, "create_connection", slow_connect)
    port = port_of(listener)
    early = EarlyConnection("127.0.0.1", port, timeout=10)
    with pytest.raises(TimeoutError):
        await open_control("127.0.0.1", port, 0.2, early)
    release.set()
    wait_done(early)
    assert len(made) == 1
    assert made[0].fileno() == -1  # closed by the give-up, not left open
    with pytest.raises(ConnectionAbortedError):
        early.take()


async def test_a_session_starts_from_its_early_connection_without_dialling_again(
    listener: socket.socket,
) -> None:
    from asyncmirror.transport import open_control

    port = port_of(listener)
    early = EarlyConnection("127.0.0.1", port, timeout=10)
    reader, writer = await open_control("127.0.0.1", port, 10, early)
    try:
        peer, _ = listener.accept()
        with peer:
            assert writer.get_extra_info("sockname") == peer.getpeername()
            peer.sendall(b"220 hello\r\n")
            assert await reader.readline() == b"220 hello\r\n"
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()  # one connection only: the early one
    finally:
        writer.transport.abort()


async def test_an_early_connect_refused_is_raised_as_a_fresh_connect_would() -> None:
    from asyncmirror.transport import open_control

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = port_of(probe)  # nothing listens once this is closed
    early = EarlyConnection("127.0.0.1", port, timeout=10)
    with pytest.raises(ConnectionRefusedError):
        await open_control("127.0.0.1", port, 10, early)
    assert not early.claim("127.0.0.1", port)  # closed on the way out


async def test_an_early_connect_that_failed_otherwise_is_redone_the_usual_way(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    """Not a network error (say, a name IDNA cannot encode): the usual connect says it
    as it would without a head start -- here, where it works, it just connects."""
    from asyncmirror.transport import open_control

    def odd_connect(address: tuple[str, int], timeout: float) -> socket.socket:
        raise ValueError("not a network error")

    port = port_of(listener)
    with monkeypatch.context() as patch:
        patch.setattr(socket, "create_connection", odd_connect)
        early = EarlyConnection("127.0.0.1", port, timeout=10)
        wait_done(early)
    reader, writer = await open_control("127.0.0.1", port, 10, early)
    try:
        peer, _ = listener.accept()
        with peer:
            peer.sendall(b"220 hello\r\n")
            assert await reader.readline() == b"220 hello\r\n"
    finally:
        writer.transport.abort()
