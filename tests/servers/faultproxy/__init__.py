"""A fault-injecting FTPS proxy in front of a real ProFTPD, for the control AND the data ports.

:class:`FaultProxy` listens on its own loopback address (``127.0.0.3`` by default) on a
control port and on every port of the server's passive range.  ProFTPD is started with
``MasqueradeAddress`` set to that address (:func:`start_fault_server`), so its
``227``/``229`` replies send the client to the proxy, which forwards each data connection
to the same port on the server.

It is a TLS man-in-the-middle on purpose: the faults need to see and change commands and
replies, which travel inside TLS after ``AUTH TLS``.  Towards the client it presents the
server's own certificate (issued for the proxy's address too, so the client's checks
pass); towards ProFTPD it is an ordinary FTPS client, and it resumes its upstream control
connection's TLS session on every upstream data connection, because this ProFTPD refuses
data connections that do not.  The client likewise resumes its session with the proxy.

The fault vocabulary
--------------------

One fault is ``Fault(on, do, name=None, every=1, times=None)``: *when* and *what*.

*When*: an event whose verb is ``on`` -- a command verb (``"STOR"``), several
(``LISTINGS``), or :data:`CONNECT` (a new control connection, before its banner) --
and, with ``name``, whose argument's base name is ``name`` (an ``--atomic`` temporary
name for that file matches too).  The fault fires on every ``every``-th matching event,
at most ``times`` times: "the Nth STOR" is ``every=N, times=1``.  Events are counted
over all connections, from the moment the fault is injected.

*What* (``do``), by where it acts:

* on the command, before the server sees it -- ``Answer(reply)``: the proxy answers and
  the server never sees the command; ``Replace(reply)``: the server's final reply is
  replaced (the transfer happened, then ``426``); ``DropControl()``: reset the control
  connection (``every_connection=True``: all of them);
* on a new connection (``on=CONNECT``) -- ``Refuse(beyond=N)``: ``421`` beyond N open
  control connections;
* effects on the whole proxy (on a command or ``CONNECT``) -- ``Silence(seconds=None)``:
  swallow every reply, banners too; ``Restart(seconds, delay=0)``: cut every connection
  and refuse new ones for a while; ``Call(fn)``: run ``fn`` (a change only the test can
  make, e.g. rewriting a local file mid-upload);
* on the data connection of a matching transfer command, after ``after`` bytes --
  ``Cut``: reset both sides; ``Truncate``: the server gets only ``after`` bytes, the
  transfer ends normally; ``Stall``: stop reading until the control connection closes;
  ``CutControl``: reset the control connection instead; ``Inject(lines)``: lines
  appended to a listing (``on=LISTINGS``; no byte count).

A test injects faults with ``proxy.inject(fault, ...)`` (``proxy.reset()`` removes them
and forgets the records) and asserts on the fault's own counters: ``seen`` (matching
events), ``fired`` (actions started) and ``done`` (actions that took effect: the cut
reached its byte count, a reply was swallowed or replaced...), so a test whose fault
never happened fails.  Every command a client sent is in ``proxy.commands`` (``PASS``
masked), with its connection's number.

Modules: :mod:`.faults` (the vocabulary and which faults are due; pure), :mod:`.control`
(one control connection), :mod:`.data` (one data connection), :mod:`.relay` (stream
helpers), :mod:`.proxy` (listening, records, effects), :mod:`.plain` (a plaintext server
that refuses ``AUTH TLS``).
"""

from .faults import (
    CONNECT,
    LISTINGS,
    Answer,
    Call,
    Cut,
    CutControl,
    DropControl,
    Fault,
    Inject,
    Refuse,
    Replace,
    Restart,
    Silence,
    Stall,
    Truncate,
)
from .plain import FakePlainServer
from .proxy import FaultProxy, fault_server, start_fault_server

__all__ = [
    "CONNECT",
    "LISTINGS",
    "Answer",
    "Call",
    "Cut",
    "CutControl",
    "DropControl",
    "FakePlainServer",
    "Fault",
    "FaultProxy",
    "Inject",
    "Refuse",
    "Replace",
    "Restart",
    "Silence",
    "Stall",
    "Truncate",
    "fault_server",
    "start_fault_server",
]
