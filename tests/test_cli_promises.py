"""The CLI keeps its promises: the settings table names exactly the commands that take each flag (checked by click
introspection), `lens settings` shows the values in effect, `lens --version`, errors as one line (JSON under --json)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from app import settings
from app.cli.main import cli


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> dict[str, click.Command]:
    """'index status' → the command, for every command under the root (groups included)."""
    out: dict[str, click.Command] = {}
    for name, cmd in group.commands.items():
        key = " ".join((*path, name))
        out[key] = cmd
        if isinstance(cmd, click.Group):
            out.update(_commands(cmd, (*path, name)))
    return out


def _setting_option(cmd: click.Command, key: str) -> click.Option | None:
    """The option of `cmd` that sets `key`: its help names the setting's variable (as `settings.option` writes
    it), or — with no variable named — its destination is the setting's key."""
    env = f"[env {settings.REGISTRY[key].env}]"
    for p in cmd.params:
        if not isinstance(p, click.Option):
            continue
        help_text = p.help or ""
        if env in help_text or ("[env LENS_" not in help_text and p.name == key):
            return p
    return None


COMMANDS = _commands(cli)


@pytest.mark.parametrize("key", list(settings.REGISTRY))
def test_the_settings_table_names_exactly_the_commands_that_take_each_flag(key: str) -> None:
    options = {name: _setting_option(cmd, key) for name, cmd in COMMANDS.items()}
    actual = sorted(name for name, opt in options.items() if opt is not None)
    declared = dict(settings.taken_by(key))
    assert actual == sorted(declared), (
        f"{key}: set by an option of {actual}, the settings table says {sorted(declared) or 'environment only'} "
        f"(fix app/settings.py TAKEN_BY or the command)"
    )
    for name, flag in declared.items():  # and the flag the table shows is the one the command takes
        opt = options[name]
        assert flag in (*opt.opts, *opt.secondary_opts), f"`lens {name}` sets {key} with {opt.opts}, not {flag}"
    row = next(line for line in settings.markdown_table().splitlines() if line.startswith(f"| `{key}` |"))
    if declared:
        assert all(f"`{flag}` on " in row and f"`lens {c}`" in row for c, flag in declared.items())
    else:
        assert "environment only" in row


def test_the_table_names_only_real_settings_and_commands() -> None:
    assert set(settings.TAKEN_BY) <= set(settings.REGISTRY)
    for key in settings.TAKEN_BY:
        for c, _ in settings.taken_by(key):
            assert c in COMMANDS, f"{key}: no command `lens {c}`"


def _run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_version() -> None:
    res = _run("--version")
    assert res.exit_code == 0 and res.output.strip() == f"lens {importlib.metadata.version('newton-lens')}"


def test_settings_show_values_in_effect() -> None:
    res = _run("settings", "--json", env={"LENS_SEED": "11", "LENS_PAGE_SIZE": ""})
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert set(doc) == set(settings.REGISTRY)
    assert doc["seed"]["value"] == 11 and doc["seed"]["source"] == "environment"
    assert (
        doc["page_size"]["value"] == settings.REGISTRY["page_size"].default and doc["page_size"]["source"] == "default"
    )
    assert doc["seed"]["commands"] == [f"lens {c}" for c, _ in settings.taken_by("seed")]
    text = _run("settings", env={"LENS_SEED": "11"})
    row = next(line for line in text.output.splitlines() if " seed " in f" {line} ")
    assert "11" in row and "environment" in row


@pytest.mark.parametrize("args", [("simulate",), ("settings",), ("explain", "0x" + "ab" * 32)])
def test_a_bad_environment_value_is_one_line(args) -> None:
    res = _run(*args, env={"LENS_SEED": "abc", "LENS_EVAL_TIMEOUT_MS": "abc"})
    assert res.exit_code == 1
    assert res.exc_info is None or res.exc_info[0] is SystemExit
    assert "Traceback" not in res.output
    assert "is not a whole number" in res.output.splitlines()[0]


def test_errors_under_json_are_json(tmp_path: Path) -> None:
    res = _run("explain", "0x" + "ab" * 32, "--db", str(tmp_path / "none.duckdb"), "--json")
    assert res.exit_code == 1
    doc = json.loads(res.output)
    assert "no database" in doc["error"] and doc["hint"]
    res = _run("audit", "--json", "--no-such-flag")
    assert res.exit_code == 2 and "no-such-flag" in json.loads(res.output)["error"]


def test_a_file_that_is_not_a_duckdb_db_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "lens.duckdb"
    fake.write_text("not a database\n")
    for args in (("explain", "0x" + "ab" * 32), ("audit",)):
        res = _run(*args, "--db", str(fake))
        assert res.exit_code == 1 and f"{fake} is not a DuckDB database" in res.output, res.output


POLICIES = Path(__file__).resolve().parents[1] / "data" / "policies"


@pytest.mark.parametrize("policy", sorted(p.name for p in POLICIES.iterdir() if (p / "policy.rego").is_file()))
def test_each_policy_ships_an_example_intent_that_evaluates(policy: str) -> None:
    folder = POLICIES / policy
    intent = json.loads((folder / "intent.example.json").read_text())
    # the documented input shape (POLICIES.md §4.1), written out here rather than taken from the code under test
    assert {"from", "to", "value", "data", "chain_id", "function_signature"} <= set(intent)
    assert all(k.islower() or "_" in k for k in intent)
    res = _run("policy", "eval", str(folder), "--json")  # the example intent, params and oracle data
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["error"] is None and doc["allow"] is True and doc["deny"] == []


def _intent_file(tmp_path: Path, **changes) -> Path:
    doc = json.loads((POLICIES / "spending_limits" / "intent.example.json").read_text())
    for k, v in changes.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    path = tmp_path / "intent.json"
    path.write_text(json.dumps(doc))
    return path


def test_policy_eval_refuses_an_on_chain_field_name(tmp_path: Path) -> None:
    path = _intent_file(tmp_path, chain_id=None, chainId="31337")
    res = _run("policy", "eval", str(POLICIES / "spending_limits"), "--input", str(path))
    assert res.exit_code == 1
    assert "'chainId' is the on-chain field name" in res.output and "use 'chain_id'" in res.output
    assert "Traceback" not in res.output
    # --no-validate evaluates it anyway (the policy never sees chain_id then)
    assert (
        _run("policy", "eval", str(POLICIES / "spending_limits"), "--input", str(path), "--no-validate").exit_code == 0
    )


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"from": "alice"}, "'from' must be an address"),
        ({"value": 1.5}, "'value' must be a whole number"),
        ({"data": "a9059cbb"}, "'data' must be 0x-prefixed hex"),
        ({"function_signature": None}, "missing 'function_signature'"),
        ({"amount": "1"}, "'amount' is not a field of the intent"),
    ],
)
def test_policy_eval_validates_the_intent(tmp_path: Path, change: dict, needle: str) -> None:
    res = _run("policy", "eval", str(POLICIES / "spending_limits"), "--input", str(_intent_file(tmp_path, **change)))
    assert res.exit_code == 1 and needle in res.output, res.output


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"max_tx_wei": "1", "daily_cap_wei": "2", "max_tx": "5"}, "unknown param 'max_tx'"),
        ({"max_tx_wei": 10, "daily_cap_wei": "2"}, "max_tx_wei: 10 is not of type 'string'"),
        ({"daily_cap_wei": "2"}, "'max_tx_wei' is a required property"),
    ],
)
def test_policy_eval_checks_params_against_the_schema(tmp_path: Path, params: dict, needle: str) -> None:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    res = _run("policy", "eval", str(POLICIES / "spending_limits"), "--params", str(path), "--json")
    assert res.exit_code == 1
    err = json.loads(res.output)["error"]
    assert needle in err and "params_schema.json" in err


def test_a_duckdb_db_without_tasks_says_so(tmp_path: Path) -> None:
    import duckdb

    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    for args in (("explain", "0x" + "ab" * 32), ("audit",)):
        res = _run(*args, "--db", str(empty))
        assert res.exit_code == 1 and "the database has no tasks table" in res.output, res.output


def test_the_indexer_tuning_flags_reach_the_indexer_options() -> None:
    import dataclasses

    from app.cli.index_cmds import TUNING, index_options
    from indexer.options import IndexOptions

    fields = {f.name for f in dataclasses.fields(IndexOptions)}
    assert set(TUNING) <= set(settings.REGISTRY) and set(TUNING.values()) <= fields
    index = COMMANDS["index"]
    args = ["--batch-blocks", "77", "--rpc-retries", "1", "--index-workers", "1", "--ipfs-gateway", "http://gw.test"]
    ctx = index.make_context("index", args, resilient_parsing=False)
    tuning = {k: ctx.params[k] for k in TUNING}
    opts = index_options(db="x.duckdb", **{TUNING[k]: v for k, v in tuning.items() if v is not None})
    assert (opts.batch_blocks, opts.retries, opts.workers, opts.ipfs_gateway) == (77, 1, 1, "http://gw.test")
    # a flag not given keeps the registry's value (its environment variable included)
    assert opts.commit_logs == settings.get("index_commit_logs")
