"""Helpers several test modules share: a deployed and simulated devnet, DB reads, AppTest page runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from streamlit.testing.v1 import AppTest
from web3 import Web3

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")


@contextmanager
def simulated_devnet(
    tasks: int, operators: int = 5, fault_rate: float = 0.1, challenge_rate: float = 1.0
) -> Iterator[tuple]:
    """A fresh anvil with the devnet deployed and `tasks` simulated → (node, w3, deployment doc, SimResult)."""
    from devnet import deploy, scenario
    from devnet.anvil import start_anvil
    from devnet.simulate import SimConfig, simulate

    node = start_anvil(port=None, accounts=20)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        doc = deploy.deploy_devnet(
            w3,
            deployer=w3.eth.accounts[0],
            operators=scenario.operator_specs(operators, 7),
            policies=scenario.policy_specs(),
            clients=scenario.client_specs(),
            challenge_window_blocks=200,
            response_window_blocks=50,
            slash_bps=1000,
        )
        doc = dict(doc, rpc_url=node.url, confirmations=0)
        cfg = SimConfig(tasks=tasks, operators=operators, fault_rate=fault_rate, challenge_rate=challenge_rate)
        result = simulate(node.url, doc, cfg)
        yield node, w3, doc, result
    finally:
        node.stop()


def sql(db: Path | str, text: str, params: list | None = None) -> list[tuple]:
    """Run one read-only query on a DuckDB file and close it again."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(text, params or []).fetchall()
    finally:
        con.close()


def page(path: str, **query) -> AppTest:
    """Run the app through its navigation to one page with the given query parameters; fails on an exception."""
    at = AppTest.from_file(APP, default_timeout=90).run()
    for k, v in query.items():
        at.query_params[k] = v
    if path != "pages/overview.py":
        at.switch_page(path)
    at.run()
    assert not at.exception, at.exception
    return at
