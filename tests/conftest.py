"""Shared fixtures: a real ProFTPD (FTPS, session reuse required) and a FEAT-swallowing proxy.

Servers start only when a test asks for them (the fixtures are lazy), so unit tests run
without ProFTPD. Tests under tests/integration get the ``integration`` marker.

Fixtures:

* ``proftpd`` (session): a running :class:`ProftpdServer`.
* ``featsilent`` (session): a :class:`FeatSilentProxy` in front of it, on its own thread;
  its records (``feat_seen``, ``plaintext_commands``, ``connections``) are reset before
  every test.
* ``remote_dir`` (function): a fresh, not yet existing directory name in the FTP home.
* ``ftp_env`` (function): environment variables for running the CLI in a subprocess.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.featsilent import FeatSilentProxy
from tests.servers.proftpd import (
    ProftpdServer,
    RemoteDir,
    require_proftpd,
    start_proftpd,
)

_TESTS_DIR = Path(__file__).resolve().parent
_INTEGRATION_DIR = _TESTS_DIR / "integration"
_FEATSILENT_KEY = pytest.StashKey[FeatSilentProxy]()
_remote_dir_numbers = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def proftpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """A ProFTPD 1.3.8 requiring TLS and TLS session reuse on data connections."""
    require_proftpd()
    server = start_proftpd(tmp_path_factory.mktemp("proftpd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def digest_proftpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProftpdServer]:
    """The same with mod_digest loaded: ``HASH``, ``XSHA256``, ``XSHA1``, ``XMD5``, ``XCRC``."""
    require_proftpd()
    server = start_proftpd(tmp_path_factory.mktemp("digest"), extra_modules=("mod_digest.c",))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def featsilent(proftpd: ProftpdServer, request: pytest.FixtureRequest) -> Iterator[FeatSilentProxy]:
    """The proxy that never answers FEAT before AUTH TLS, in front of ``proftpd``.

    Has ``host``, ``port``, ``feat_seen``, ``plaintext_commands``, ``connections``.
    """
    proxy = FeatSilentProxy(proftpd.host, proftpd.port)
    proxy.start_in_thread()
    request.config.stash[_FEATSILENT_KEY] = proxy
    try:
        yield proxy
    finally:
        del request.config.stash[_FEATSILENT_KEY]
        proxy.stop_thread()


@pytest.fixture(autouse=True)
def _reset_featsilent_records(request: pytest.FixtureRequest) -> None:
    # Only touches a proxy that some test already started: starts nothing itself.
    proxy = request.config.stash.get(_FEATSILENT_KEY, None)
    if proxy is not None:
        proxy.reset()


@pytest.fixture
def remote_dir(proftpd: ProftpdServer, request: pytest.FixtureRequest) -> RemoteDir:
    """A unique directory name relative to the FTP home (``.name``) and its ``.path`` on disk.

    Nothing is created: the code under test must create it.
    """
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40] or "test"
    name = f"t-{base}-{next(_remote_dir_numbers)}"
    remote = RemoteDir(name=name, path=proftpd.home / name)
    assert not remote.path.exists(), remote.path
    return remote


@pytest.fixture
def ftp_env(featsilent: FeatSilentProxy, proftpd: ProftpdServer) -> dict[str, str]:
    """Variables for a subprocess run through the FEAT-silent proxy: ``{**os.environ, **ftp_env}``.

    ``SSL_CERT_FILE`` makes Python's default SSL context trust the test CA.
    """
    return {
        "FTP_SERVER": f"{featsilent.host}:{featsilent.port}",
        "FTP_USERNAME": proftpd.user,
        "FTP_PASSWORD": proftpd.password,
        "SSL_CERT_FILE": str(proftpd.ca_file),
    }
