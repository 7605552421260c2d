"""Shared pytest fixtures: one real anvil node per test worker, and a web3 client on it."""

from __future__ import annotations

import pytest
from web3 import Web3

from devnet.anvil import Anvil, start_anvil


@pytest.fixture(scope="session")
def anvil() -> Anvil:
    """A real anvil node on a free port, started once per test worker and stopped at the end."""
    node = start_anvil(port=None, accounts=20)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    """A web3 client connected to the session's anvil node."""
    client = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))
    assert client.is_connected()
    return client


@pytest.fixture()
def fresh_anvil() -> Anvil:
    """An anvil node of the test's own, for tests that need a chain nobody else touches (reorgs, determinism)."""
    node = start_anvil(port=None, accounts=20)
    yield node
    node.stop()
