"""CLI: `lens contracts build|check` — compile the devnet Solidity with the pinned solc, check committed artifacts."""

from __future__ import annotations

import json

import click


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach the `contracts` group (build, check) to the root group and `bench bls` to the bench group."""
    _register_bench(bench)

    @cli.group()
    def contracts() -> None:
        """The devnet Solidity contracts and their committed artifacts."""

    @contracts.command("build")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    def build(as_json: bool) -> None:
        """Compile contracts/*.sol with the pinned solcjs and write contracts/artifacts/<Name>.json."""
        from devnet import contracts as c

        arts = c.compile_all()
        paths = c.write_artifacts(arts)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "compiler": next(iter(arts.values()))["compiler"]["version"],
                        "artifacts": {n: str(p) for n, p in zip(sorted(arts), paths)},
                    }
                )
            )
            return
        for name in sorted(arts):
            size = (len(arts[name]["deployedBytecode"]) - 2) // 2
            click.echo(f"  {name:<18} {size:>6} bytes runtime")
        click.secho(
            f"wrote {len(paths)} artifacts to {c.ARTIFACTS_DIR} "
            f"(solc {next(iter(arts.values()))['compiler']['version']})",
            fg="green",
        )

    @contracts.command("check")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    def check(as_json: bool) -> None:
        """Recompile and verify the committed artifacts equal the fresh compile (exit 1 if stale)."""
        from app.errors import LensError
        from devnet import contracts as c

        stale = c.check_artifacts()
        if as_json:
            click.echo(json.dumps({"up_to_date": not stale, "stale": stale}))
            if stale:
                raise SystemExit(1)
            return
        if stale:
            raise LensError(f"artifacts out of date: {', '.join(stale)}", "run `make contracts` (lens contracts build)")
        click.secho("artifacts up to date", fg="green")


def bls_bench(n: int, rounds: int) -> dict:
    """Time BLS signing for a quorum of n over `rounds` digests; py_ecc's G1 multiply is the in-run baseline."""
    import os
    import time

    from py_ecc import optimized_bn128 as ob

    from devnet import bls

    keys = [bls.keypair_from_seed(f"bench-{i}".encode()) for i in range(n)]
    digests = [os.urandom(32) for _ in range(rounds)]
    t = time.perf_counter()
    for d in digests:
        bls.aggregate_g1(bls.sign(k.secret, d) for k in keys)
    each = (time.perf_counter() - t) / rounds
    t = time.perf_counter()
    for d in digests:
        bls.signature_data(d, keys[1:], keys[:1])
    fast = (time.perf_counter() - t) / rounds
    t = time.perf_counter()
    for d in digests[: max(1, rounds // 5)]:
        h = bls.hash_to_g1(d)
        for k in keys:
            ob.multiply((ob.FQ(h[0]), ob.FQ(h[1]), ob.FQ.one()), k.secret)
    baseline = (time.perf_counter() - t) / max(1, rounds // 5)
    return {
        "operators": n,
        "rounds": rounds,
        "sign_and_aggregate_ms": round(each * 1e3, 3),
        "signature_data_ms": round(fast * 1e3, 3),
        "py_ecc_sign_n_ms": round(baseline * 1e3, 3),
        "speedup_vs_py_ecc": round(baseline / each, 1) if each else None,
    }


def _register_bench(bench: click.Group) -> None:
    """Attach `lens bench bls`."""

    @bench.command("bls")
    @click.option("--operators", "n", default=10, show_default=True, help="Signers per task.")
    @click.option("--rounds", default=50, show_default=True, help="Digests signed.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    def bench_bls(n: int, rounds: int, as_json: bool) -> None:
        """BLS signing speed: n individual signatures + aggregation per task, and the one-scalar-mult fast path."""
        out = bls_bench(n, rounds)
        if as_json:
            click.echo(json.dumps(out))
            return
        click.echo(
            f"sign {n} + aggregate: {out['sign_and_aggregate_ms']} ms/task "
            f"({out['speedup_vs_py_ecc']}x py_ecc's {out['py_ecc_sign_n_ms']} ms)"
        )
        click.echo(f"signature_data (aggregate secret, cached apkG2): {out['signature_data_ms']} ms/task")
