"""The devnet contracts on a real anvil chain: every path of the task lifecycle, registry and policy, happy and
failing, and every emitted event checked against the canonical signatures of EVENTS.md."""

from __future__ import annotations

import itertools
import json

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from app.errors import LensError
from devnet import bls, deploy
from devnet import protocol as pr
from devnet.tx import call, rpc, send_tx

pytestmark = pytest.mark.xdist_group("contracts")

# ------------------------------------------------------------------------------------------------------------------
# The EVENTS.md ABI: canonical signature, topic0 as printed in EVENTS.md, positions of the indexed fields.
EVENTS = {
    "NewTaskCreated": (
        f"NewTaskCreated(bytes32,{pr.TASK},{pr.POLICY_STATE})",
        "0x59945c4b280f2ccf9bcfa9a217b0629fd61f8d39864f1bb198590f88da7138bc",
        (0,),
    ),
    "TaskResponded": (
        f"TaskResponded({pr.TASK_RESPONSE},{pr.RESPONSE_CERTIFICATE})",
        "0x9158a80c164dc98ea6cfbef773b37f3f91813ba3f898729b952b3a1303f757b2",
        (),
    ),
    "PolicyDenied": (
        "PolicyDenied(address,bytes32,bytes32,bytes32,uint32)",
        "0xef8ce97d2fa69839d5bfbc66f9e14b1a4ee8ae0dd640f5237360ccb638f499af",
        (0, 1),
    ),
    "AttestationSpent": (
        f"AttestationSpent(bytes32,{pr.ATTESTATION})",
        "0xcecc683f5a5724e2e1c85bf11748af2141e0e320c7802a6d0c9ad6efdf5ddcbb",
        (0,),
    ),
    "TaskChallengedSuccessfully": (
        "TaskChallengedSuccessfully(bytes32,address)",
        "0x76f638bf7002c52c8f60b4e096043f7dcfb61a9af2d5badd1923395836669261",
        (0, 1),
    ),
    "TaskChallengedUnsuccessfully": (
        "TaskChallengedUnsuccessfully(bytes32,address)",
        "0x126b016e720d5c6ef27165dc8b00ae0d8ad0bf5500d8c240c1d920a92e5499e8",
        (0, 1),
    ),
    "PolicySet": (
        f"PolicySet(address,bytes32,{pr.SET_POLICY_INFO})",
        "0x4a290fa7d502cf69f303e332435bc6843a71d8ea21e49383441ee44c6904f0a9",
        (0, 1),
    ),
    "policyMetadataCidUpdated": (
        "policyMetadataCidUpdated(string)",
        "0x8d27cb1d2bb20a12f312bfde849b21be0d71b82084e15bb1ee25b6456d1de541",
        (),
    ),
    "PolicyAddressUpdated": (
        "PolicyAddressUpdated(address,address)",
        "0x26b393dbdada2251b8af01251eeab5d6416823b4eca2b5b908724000ed612c6a",
        (0, 1),
    ),
    "PolicyIdUpdated": (
        "PolicyIdUpdated(address,bytes32)",
        "0x04e1e70c711021a1320ab81b3547a46dc547ecae1cd8be314b6c43f3598b1ab2",
        (0, 1),
    ),
    "OperatorRegistered": (
        "OperatorRegistered(address,bytes32)",
        "0xe8e68cef1c3a761ed7be7e8463a375f27f7bc335e51824223cacce636ec5c3fe",
        (0, 1),
    ),
    "OperatorDeregistered": (
        "OperatorDeregistered(address,bytes32)",
        "0x396fdcb180cb0fea26928113fb0fd1c3549863f9cd563e6a184f1d578116c8e4",
        (0, 1),
    ),
    "OperatorSocketUpdate": (
        "OperatorSocketUpdate(bytes32,string)",
        "0xec2963ab21c1e50e1e582aa542af2e4bf7bf38e6e1403c27b42e1c5d6e621eaa",
        (0,),
    ),
    "TaskGeneratorAdded": (
        "TaskGeneratorAdded(address)",
        "0xb040ecbf2d5effe525dd95133ffbadf2287e6840af0775d0cc73de62d5d2fd54",
        (0,),
    ),
    "NewPubkeyRegistration": (
        "NewPubkeyRegistration(address,(uint256,uint256),(uint256[2],uint256[2]))",
        "0xe3fb6613af2e8930cf85d47fcf6db10192224a64c6cbe8023e0eee1ba3828041",
        (0,),
    ),
    "OperatorAddedToQuorums": (
        "OperatorAddedToQuorums(address,bytes32,bytes)",
        "0x73a2b7fb844724b971802ae9b15db094d4b7192df9d7350e14eb466b9b22eb4e",
        (),
    ),
    "OperatorRemovedFromQuorums": (
        "OperatorRemovedFromQuorums(address,bytes32,bytes)",
        "0xf843ecd53a563675e62107be1494fdde4a3d49aeedaf8d88c616d85346e3500e",
        (),
    ),
    "OperatorStakeUpdate": (
        "OperatorStakeUpdate(bytes32,uint8,uint96)",
        "0x2f527d527e95d8fe40aec55377743bb779087da3f6d0d08f12e36444da62327d",
        (0,),
    ),
    "QuorumIndexUpdate": (
        "QuorumIndexUpdate(bytes32,uint8,uint32)",
        "0x6ee1e4f4075f3d067176140d34e87874244dd273294c05b2218133e49a2ba6f6",
        (0,),
    ),
    "OperatorSlashed": (
        "OperatorSlashed(uint256,address,uint32,uint256[],string)",
        "0x8a83cf9afb09a981314f4fb353b95b003451da170a99f48d8db6474b06d79f3b",
        (0, 1, 2),
    ),
    "OperatorMetadataURIUpdated": (
        "OperatorMetadataURIUpdated(address,string)",
        "0x02a919ed0e2acad1dd90f17ef2fa4ae5462ee1339170034a8531cca4b6708090",
        (0,),
    ),
    # Proxy plumbing (EVENTS.md §1.1 (7)) and OpenZeppelin's proxy/access events the devnet's proxies emit.
    "Initialized": ("Initialized(uint8)", None, ()),
    "OwnershipTransferred": ("OwnershipTransferred(address,address)", None, (0, 1)),
    "Upgraded": ("Upgraded(address)", None, (0,)),
    "AdminChanged": ("AdminChanged(address,address)", None, ()),
    "RoleGranted": ("RoleGranted(bytes32,address,address)", None, (0, 1, 2)),
    # Lens's own devnet events (not Newton's): checked the same way.
    "IntentExecuted": ("IntentExecuted(bytes32,address,address,uint256)", None, (0, 1)),
    "IntentDenied": ("IntentDenied(bytes32,address)", None, (0, 1)),
    "Transfer": ("Transfer(address,address,uint256)", None, (0, 1)),
}
BY_TOPIC = {"0x" + keccak(text=sig).hex(): name for name, (sig, _, _) in EVENTS.items()}


def split_types(inner: str) -> list[str]:
    """Top-level comma split of a tuple type list."""
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


def norm(v):
    """Comparable form: addresses lower-case, lists as tuples."""
    if isinstance(v, str):
        return v.lower() if v.startswith("0x") else v
    if isinstance(v, (list, tuple)):
        return tuple(norm(x) for x in v)
    return v


def decode_log(log: dict, name: str) -> tuple:
    """Decode a raw log with the EVENTS.md ABI, asserting topic0 and the number of indexed topics."""
    sig, documented, indexed = EVENTS[name]
    topic0 = "0x" + keccak(text=sig).hex()
    assert log["topics"][0] == topic0, f"{name}: topic0 {log['topics'][0]} is not keccak({sig})"
    if documented is not None:
        assert topic0 == documented, f"{name}: canonical signature does not hash to the EVENTS.md topic0"
    assert len(log["topics"]) == 1 + len(indexed), f"{name}: wrong number of indexed fields"
    types = split_types(sig[sig.index("(") + 1 : -1])
    data_vals = iter(abi_decode([t for i, t in enumerate(types) if i not in indexed], bytes.fromhex(log["data"][2:])))
    topics = iter(log["topics"][1:])
    return norm(
        tuple(
            abi_decode([t], bytes.fromhex(next(topics)[2:]))[0] if i in indexed else next(data_vals)
            for i, t in enumerate(types)
        )
    )


def events(receipt: dict) -> list[tuple[str, dict]]:
    """(event name, raw log) for every log of a receipt; every log must be a known canonical event."""
    out = []
    for log in receipt["logs"]:
        name = BY_TOPIC.get(log["topics"][0])
        assert name is not None, f"log with unknown topic0 {log['topics'][0]}"
        out.append((name, log))
    return out


def only(receipt: dict, name: str) -> tuple:
    """The decoded single log `name` of a receipt."""
    found = [log for n, log in events(receipt) if n == name]
    assert len(found) == 1, f"expected one {name}, got {len(found)}"
    return decode_log(found[0], name)


# ------------------------------------------------------------------------------------------------------------------
POLICY_SRC = 'package lens.test\n\ndefault allow := false\nallow if input.value != "0"\n'
N_OPS = 6
THRESHOLD = 67


class Dev:
    """A fresh devnet deployment on the session's anvil, with helpers to drive the task lifecycle."""

    def __init__(self, w3, n_ops: int = N_OPS, tag: str = "m", expire_after: int = 20):
        self.w3 = w3
        self.specs = [
            deploy.OperatorSpec(
                f"op{i}",
                keccak(text=f"{tag}-op-{i}"),
                (10 + i) * 10**18,
                f"op{i}.example:9000",
                f"https://op{i}.example/meta.json",
            )
            for i in range(n_ops)
        ]
        self.policy = deploy.PolicySpec(
            "screening",
            POLICY_SRC,
            "lens.test.allow",
            "bafy-policy",
            "bafy-schema",
            "bafy-meta",
            "1.2.0",
            ("sanctions", "kyc"),
        )
        self.params = {"max_value": "1000000000000000000", "blocked": ["0x" + "ab" * 20]}
        self.doc = deploy.deploy_devnet(
            w3,
            deployer=w3.eth.accounts[0],
            operators=self.specs,
            policies=[self.policy],
            clients=[deploy.ClientSpec("vault", "screening", self.params, expire_after)],
            challenge_window_blocks=30,
            response_window_blocks=15,
            slash_bps=1000,
        )
        deploy.upgrade_task_manager(w3, self.doc)  # to the implementation that emits the current layouts
        c = self.doc["contracts"]
        self.tm, self.registry, self.token = c["taskManager"], c["operatorRegistry"], c["token"]
        self.vault = self.doc["clients"]["vault"]["address"]
        self.policy_addr = self.doc["policies"]["screening"]["address"]
        self.aggregator = to_checksum_address(self.doc["roles"]["aggregator"])
        self.deployer = to_checksum_address(self.doc["roles"]["deployer"])
        self.challenger = to_checksum_address(self.doc["roles"]["challenger"])
        self.kp = {deploy.operator_account(s).address.lower(): deploy.operator_keypair(s) for s in self.specs}
        self.chain_id = int(rpc(w3, "eth_chainId"), 16)
        self.agent = deploy.derived_account("agent", tag, 0)
        rpc(w3, "anvil_setBalance", [self.agent.address, hex(10**22)])
        self.ids = itertools.count(1)
        self.tag = tag

    # --- chain access
    def block(self) -> int:
        return int(rpc(self.w3, "eth_blockNumber"), 16)

    def mine(self, n: int) -> None:
        rpc(self.w3, "anvil_mine", [hex(n)])

    def view(self, contract: str, address: str, fn: str, *args, block="latest"):
        c = deploy._codec(contract)
        out = call(
            self.w3, address, c.encode_abi(fn, list(args)), block=block if isinstance(block, str) else hex(block)
        )
        abi_fn = next(i for i in c.abi if i.get("name") == fn and i["type"] == "function")
        from devnet.contracts import _abi_type

        res = abi_decode([_abi_type(o) for o in abi_fn["outputs"]], out)
        return norm(res[0] if len(res) == 1 else res)

    def send(self, sender, to: str, data: bytes | str, what: str = "tx") -> dict:
        return send_tx(self.w3, sender, to=to_checksum_address(to), data=data, what=what)

    # --- the lifecycle
    def intent(self, value: int = 10**15, to: str | None = None) -> tuple:
        return pr.intent(self.agent.address.lower(), to or "0x" + "77" * 20, value, b"", self.chain_id, b"")

    def new_task(self, intent=None, threshold: int = THRESHOLD, created: int | None = None) -> tuple:
        task_id = keccak(text=f"{self.tag}-task-{next(self.ids)}")
        created = self.block() if created is None else created
        return pr.task(
            task_id,
            self.vault,
            created,
            threshold,
            intent or self.intent(),
            intent_signature=b"\x01sig",
            wasm_args=b'{"k":1}',
            initialization_timestamp=1_700_000_000,
        )

    def create(self, task: tuple) -> dict:
        return self.send(self.aggregator, self.tm, pr.create_calldata(task), "createNewTask")

    def policy_id(self) -> bytes:
        return self.view("AgentVault", self.vault, "getPolicyId")

    def response(
        self,
        task: tuple,
        result: bytes = pr.ALLOW,
        source: str = POLICY_SRC,
        expire_after: int | None = None,
        intent=None,
    ) -> tuple:
        pid = self.policy_id()
        cfg = self.view("NewtonPolicy", self.policy_addr, "getPolicyConfig", pid)
        datas = [
            pr.policy_data(b"{}", json.dumps({n: {"ok": True}}).encode(), a, self.block() + 50)
            for n, a in zip(self.policy.policy_data, self.doc["policies"]["screening"]["policy_data"])
        ]
        r = pr.task_response(
            task,
            pid,
            self.policy_addr,
            result,
            source.encode(),
            datas,
            cfg[0],
            cfg[1] if expire_after is None else expire_after,
        )
        if intent is not None:
            r = r[:4] + (intent,) + r[5:]
        return r

    def quorum_at(self, block: int) -> list[bls.BlsKeyPair]:
        ops = self.view("OperatorRegistry", self.registry, "quorumOperators", block=block)
        return [self.kp[o] for o in ops]

    def sign(self, task: tuple, response: tuple, non_signers: int = 0, digest: bytes | None = None) -> tuple:
        """signatureData with the last `non_signers` members of the quorum at taskCreatedBlock not signing."""
        quorum = self.quorum_at(task[2])
        signers, absent = quorum[: len(quorum) - non_signers], quorum[len(quorum) - non_signers :]
        data = bls.signature_data(digest or pr.response_digest(response), signers, absent)
        return data, signers, absent

    def respond(self, task, response, sig_data) -> dict:
        return self.send(self.aggregator, self.tm, pr.respond_calldata(task, response, sig_data), "respondToTask")

    def allowed_task(self, non_signers: int = 1, **kw) -> tuple:
        """Create and respond (allow); returns (task, response, certificate, receipt, absent keys)."""
        task = self.new_task(**kw)
        self.create(task)
        resp = self.response(task)
        sig, _, absent = self.sign(task, resp, non_signers)
        rc = self.respond(task, resp, sig)
        ref = int(rc["blockNumber"], 16)
        cert = pr.certificate(ref, resp[8][1], bls.hash_of_non_signers(task[2], [k.g1 for k in absent]), sig)
        return task, resp, cert, rc, absent

    def execute(self, att: tuple, sender=None) -> dict:
        return self.send(sender or self.agent, self.vault, pr.execute_calldata(att), "execute")

    def challenge(self, task, resp, cert, proven: bytes, absent, resolver=None) -> dict:
        ch = deploy.challenge_data(task[0], pr.response_digest(resp), proven, resolver)
        return self.send(
            self.challenger, self.tm, pr.challenge_calldata(task, resp, cert, ch, [k.g1 for k in absent]), "challenge"
        )

    def stakes(self) -> dict[str, int]:
        return {
            a: self.view("OperatorRegistry", self.registry, "currentStake", to_checksum_address(a)) for a in self.kp
        }


def reverts(fn, error: str):
    """Assert `fn()` raises LensError whose message names the custom error `error`."""
    with pytest.raises(LensError) as exc:
        fn()
    assert error in str(exc.value), str(exc.value)
    return exc.value


@pytest.fixture(scope="module")
def dev(w3) -> Dev:
    return Dev(w3, tag="lifecycle")


# ------------------------------------------------------------------------------------------------------------------
# create / respond / spend


def test_allow_lifecycle_events_decode_to_what_was_sent(dev: Dev) -> None:
    task = dev.new_task()
    rc = dev.create(task)
    state = (dev.policy_addr, dev.policy_id(), (deploy.params_bytes(dev.params), 20))
    assert [n for n, _ in events(rc)] == ["NewTaskCreated"]
    assert only(rc, "NewTaskCreated") == norm((task[0], task, state))

    resp = dev.response(task)
    sig, signers, absent = dev.sign(task, resp, non_signers=1)
    rc = dev.respond(task, resp, sig)
    ref = int(rc["blockNumber"], 16)
    cert = pr.certificate(ref, 20, bls.hash_of_non_signers(task[2], [k.g1 for k in absent]), sig)
    assert [n for n, _ in events(rc)] == ["TaskResponded"]  # allow → no PolicyDenied
    assert only(rc, "TaskResponded") == norm((resp, cert))
    digest, allow, expire = dev.view("TaskManager", dev.tm, "getTaskResponse", task[0])
    assert (digest, allow, expire) == (pr.response_digest(resp), True, ref + 20)

    att = pr.attestation(resp, ref + 20)
    before = int(rpc(dev.w3, "eth_getBalance", ["0x" + "77" * 20, "latest"]), 16)
    rc = dev.execute(att)
    assert [n for n, _ in events(rc)] == ["AttestationSpent", "IntentExecuted"]
    assert only(rc, "AttestationSpent") == norm((task[0], att))
    assert only(rc, "IntentExecuted") == norm((task[0], dev.agent.address, "0x" + "77" * 20, 10**15))
    assert int(rpc(dev.w3, "eth_getBalance", ["0x" + "77" * 20, "latest"]), 16) == before + 10**15

    reverts(lambda: dev.execute(att), "AttestationAlreadySpent")  # double spend


def test_token_transfer_through_vault(dev: Dev) -> None:
    recipient = "0x" + "42" * 20
    data = bytes.fromhex(deploy.calldata("TestToken", "transfer", to_checksum_address(recipient), 5 * 10**18)[2:])
    it = pr.intent(dev.agent.address.lower(), dev.token, 0, data, dev.chain_id, b"transfer(address,uint256)")
    task, resp, cert, _, _ = dev.allowed_task(intent=it)
    rc = dev.execute(pr.attestation(resp, cert[1]))
    assert only(rc, "Transfer") == norm((dev.vault, recipient, 5 * 10**18))
    assert dev.view("TestToken", dev.token, "balanceOf", to_checksum_address(recipient)) == 5 * 10**18


def test_deny_emits_policy_denied_then_task_responded_and_cannot_be_spent(dev: Dev) -> None:
    task = dev.new_task()
    dev.create(task)
    resp = dev.response(task, result=pr.DENY)
    sig, _, _ = dev.sign(task, resp, 0)
    rc = dev.respond(task, resp, sig)
    ref = int(rc["blockNumber"], 16)
    assert [n for n, _ in events(rc)] == ["PolicyDenied", "TaskResponded"]
    assert only(rc, "PolicyDenied") == norm(
        (dev.vault, task[0], resp[2], keccak(abi_encode([pr.INTENT], [task[4]])), ref)
    )
    reverts(lambda: dev.execute(pr.attestation(resp, ref + 20)), "TaskDenied")
    rc = dev.send(dev.agent, dev.vault, pr.record_denial_calldata(task[0]), "recordDenial")
    assert only(rc, "IntentDenied") == norm((task[0], dev.agent.address))
    reverts(lambda: dev.send(dev.agent, dev.vault, pr.record_denial_calldata(task[0])), "DenialAlreadyRecorded")


def test_string_true_is_a_canonical_allow(dev: Dev) -> None:
    assert dev.view("TaskManager", dev.tm, "isCanonicalAllow", abi_encode(["string"], ["true"])) is True
    assert dev.view("TaskManager", dev.tm, "isCanonicalAllow", abi_encode(["string"], ["True"])) is False
    assert dev.view("TaskManager", dev.tm, "isCanonicalAllow", abi_encode(["uint256"], [2])) is False
    assert dev.view("TaskManager", dev.tm, "isCanonicalAllow", b"") is False


def test_bad_bls_signature_is_rejected(dev: Dev) -> None:
    task = dev.new_task()
    dev.create(task)
    resp = dev.response(task)
    wrong, _, _ = dev.sign(task, resp, 0, digest=keccak(b"another message"))
    reverts(lambda: dev.respond(task, resp, wrong), "InvalidSignature")
    # sigma of the right message but a quorum apk that is not the registered one
    good, signers, _ = dev.sign(task, resp, 0)
    fake_apk = bls.encode_signature_data(
        [],
        bls.g1_add(bls.aggregate_g1([k.g1 for k in signers]), bls.G1_GEN),
        bls.aggregate_g2([k.g2 for k in signers]),
        bls.sign_aggregate([k.secret for k in signers], pr.response_digest(resp)),
    )
    reverts(lambda: dev.respond(task, resp, fake_apk), "InvalidQuorumApk")
    dev.respond(task, resp, good)  # the task is still answerable with a valid signature


def test_signers_below_quorum_are_rejected(dev: Dev) -> None:
    task = dev.new_task(threshold=THRESHOLD)
    dev.create(task)
    resp = dev.response(task)
    sig, _, _ = dev.sign(task, resp, non_signers=3)  # 3 of 6 absent: well under 67 % of stake
    reverts(lambda: dev.respond(task, resp, sig), "InsufficientSignedStake")


def test_unsorted_non_signers_are_rejected(dev: Dev) -> None:
    task = dev.new_task(threshold=0)
    dev.create(task)
    resp = dev.response(task)
    quorum = dev.quorum_at(task[2])
    signers, absent = quorum[2:], quorum[:2]
    digest = pr.response_digest(resp)
    good = bls.signature_data(digest, signers, absent)
    value = abi_decode([bls.NSS_TYPE], good)[0]
    swapped = (
        value[0],
        list(reversed(value[1])),
    ) + tuple(value[2:])
    reverts(lambda: dev.respond(task, resp, abi_encode([bls.NSS_TYPE], [swapped])), "NonSignersNotSorted")
    dev.respond(task, resp, good)


def test_expired_attestation(w3) -> None:
    short = Dev(w3, n_ops=3, tag="expiry", expire_after=2)
    task, resp, cert, _, _ = short.allowed_task(non_signers=0)
    short.mine(3)
    err = reverts(lambda: short.execute(pr.attestation(resp, cert[1])), "AttestationExpired")
    assert str(cert[1]) in str(err)


def test_attestation_for_a_different_intent_is_rejected(dev: Dev) -> None:
    task, resp, cert, _, _ = dev.allowed_task()
    att = pr.attestation(resp, cert[1])
    other = att[:4] + (att[4][:2] + (att[4][2] * 2,) + att[4][3:],) + att[5:]
    reverts(lambda: dev.execute(other), "AttestationMismatch")
    later = att[:3] + (att[3] + 5,) + att[4:]  # a longer expiry than attested
    reverts(lambda: dev.execute(later), "AttestationMismatch")
    stranger = deploy.derived_account("agent", "stranger", 0)
    rpc(dev.w3, "anvil_setBalance", [stranger.address, hex(10**20)])
    reverts(lambda: dev.execute(att, sender=stranger), "SenderNotIntentFrom")
    dev.execute(att)


def test_response_must_match_the_task(dev: Dev) -> None:
    task = dev.new_task()
    dev.create(task)
    resp = dev.response(task, intent=dev.intent(value=123))
    sig, _, _ = dev.sign(task, resp)
    reverts(lambda: dev.respond(task, resp, sig), "ResponseDoesNotMatchTask(intent)")
    bad_code = dev.response(task, source=POLICY_SRC + "# edited\n")
    sig, _, _ = dev.sign(task, bad_code)
    reverts(lambda: dev.respond(task, bad_code, sig), "PolicyCodeHashMismatch")
    bad_cfg = dev.response(task, expire_after=999)
    sig, _, _ = dev.sign(task, bad_cfg)
    reverts(lambda: dev.respond(task, bad_cfg, sig), "PolicyConfigMismatch")
    resp = dev.response(task)
    sig, _, _ = dev.sign(task, resp)
    dev.respond(task, resp, sig)
    reverts(lambda: dev.respond(task, resp, sig), "TaskAlreadyResponded")


def test_task_creation_checks(dev: Dev) -> None:
    task = dev.new_task()
    reverts(lambda: dev.send(dev.deployer, dev.tm, pr.create_calldata(task)), "OnlyTaskGenerator")
    dev.create(task)
    reverts(lambda: dev.create(task), "TaskAlreadyExists")
    reverts(lambda: dev.create(dev.new_task(created=dev.block() + 5)), "InvalidTaskCreatedBlock")
    dev.mine(deploy.TASK_CREATION_BUFFER_WINDOW + 2)
    reverts(
        lambda: dev.create(dev.new_task(created=dev.block() - deploy.TASK_CREATION_BUFFER_WINDOW - 1)),
        "InvalidTaskCreatedBlock",
    )
    reverts(lambda: dev.create(dev.new_task(threshold=101)), "InvalidQuorumThreshold")
    eoa_client = dev.new_task()
    eoa_client = eoa_client[:1] + ("0x" + "99" * 20,) + eoa_client[2:]
    reverts(lambda: dev.create(eoa_client), "PolicyClientNotSupported")


def test_response_window(dev: Dev) -> None:
    task = dev.new_task()
    dev.create(task)
    dev.mine(15)
    resp = dev.response(task)
    sig, _, _ = dev.sign(task, resp)
    reverts(lambda: dev.respond(task, resp, sig), "ResponseWindowClosed")


# ------------------------------------------------------------------------------------------------------------------
# challenges


def test_successful_challenge_slashes_every_signer_and_voids_the_attestation(dev: Dev) -> None:
    task, resp, cert, _, absent = dev.allowed_task(non_signers=1)
    before = dev.stakes()
    reverts(
        lambda: dev.challenge(task, resp, cert, pr.DENY, absent, resolver=Account.create()), "InvalidChallengeProof"
    )
    reverts(lambda: dev.challenge(task, resp, cert, pr.DENY, []), "NonSignerHashMismatch")
    rc = dev.challenge(task, resp, cert, pr.DENY, absent)
    names = [n for n, _ in events(rc)]
    assert names[0] == "TaskChallengedSuccessfully"
    assert decode_log(rc["logs"][0], "TaskChallengedSuccessfully") == norm((task[0], dev.challenger))
    slashed = [decode_log(log, "OperatorSlashed") for n, log in events(rc) if n == "OperatorSlashed"]
    updates = [decode_log(log, "OperatorStakeUpdate") for n, log in events(rc) if n == "OperatorStakeUpdate"]
    signer_addrs = {a for a, k in dev.kp.items() if k not in absent}
    assert {s[1] for s in slashed} == signer_addrs and len(slashed) == len(signer_addrs)
    assert all(s[2] == 0 and s[3] == (10**17,) and s[4] == "slash_the_operator" for s in slashed)
    after = dev.stakes()
    for a in dev.kp:
        expected = before[a] - before[a] // 10 if a in signer_addrs else before[a]
        assert after[a] == expected
    assert {u[0]: u[2] for u in updates} == {bls.operator_id(dev.kp[a].g1): after[a] for a in signer_addrs}
    assert dev.view("TaskManager", dev.tm, "isChallenged", task[0]) is True
    reverts(lambda: dev.execute(pr.attestation(resp, cert[1])), "TaskChallenged")
    reverts(lambda: dev.challenge(task, resp, cert, pr.DENY, absent), "TaskAlreadyChallenged")


def test_unsuccessful_challenge_changes_nothing(dev: Dev) -> None:
    task, resp, cert, _, absent = dev.allowed_task(non_signers=0)
    before = dev.stakes()
    rc = dev.challenge(task, resp, cert, abi_encode(["string"], ["true"]), absent)  # same verdict, other encoding
    assert [n for n, _ in events(rc)] == ["TaskChallengedUnsuccessfully"]
    assert only(rc, "TaskChallengedUnsuccessfully") == norm((task[0], dev.challenger))
    assert dev.stakes() == before
    dev.execute(pr.attestation(resp, cert[1]))


def test_challenge_outside_the_window(dev: Dev) -> None:
    task, resp, cert, _, absent = dev.allowed_task()
    dev.mine(30)
    reverts(lambda: dev.challenge(task, resp, cert, pr.DENY, absent), "ChallengeWindowClosed")
    forged = cert[:2] + (cert[2], b"\xff" + cert[3][1:])
    reverts(lambda: dev.challenge(task, resp, forged, pr.DENY, absent), "ResponseMismatch")


# ------------------------------------------------------------------------------------------------------------------
# registry


@pytest.fixture(scope="module")
def reg(w3) -> Dev:
    return Dev(w3, n_ops=3, tag="registry")


def _register_calldata(reg: Dev, spec, kp, sig, g2=None) -> str:
    g2 = g2 or kp.g2
    return deploy.calldata(
        "OperatorRegistry",
        "registerOperator",
        kp.g1,
        [list(g2[0]), list(g2[1])],
        sig,
        spec.socket,
        spec.metadata_uri,
        spec.stake,
    )


def test_registration_events_and_pop(reg: Dev) -> None:
    spec = deploy.OperatorSpec("joiner", keccak(text="joiner"), 7 * 10**18, "joiner:1", "ipfs://joiner")
    acct, kp = deploy.operator_account(spec), deploy.operator_keypair(spec)
    rpc(reg.w3, "anvil_setBalance", [acct.address, hex(10**21)])
    msg = bls.pubkey_registration_message(acct.address, to_checksum_address(reg.registry), reg.chain_id)
    assert reg.view("OperatorRegistry", reg.registry, "pubkeyRegistrationMessageHash", acct.address) == msg
    # PoP failures: a signature by another key, and a G2 key that does not match the G1 key
    other = bls.keypair_from_seed(b"other")
    reverts(
        lambda: reg.send(acct, reg.registry, _register_calldata(reg, spec, kp, bls.pop_signature(other, msg))),
        "InvalidBLSSignatureOrPrivateKey",
    )
    reverts(
        lambda: reg.send(
            acct, reg.registry, _register_calldata(reg, spec, kp, bls.pop_signature(kp, msg), g2=other.g2)
        ),
        "InvalidBLSSignatureOrPrivateKey",
    )
    # PoP bound to the operator: a valid PoP of another operator address fails
    msg_other = bls.pubkey_registration_message("0x" + "11" * 20, to_checksum_address(reg.registry), reg.chain_id)
    reverts(
        lambda: reg.send(acct, reg.registry, _register_calldata(reg, spec, kp, bls.pop_signature(kp, msg_other))),
        "InvalidBLSSignatureOrPrivateKey",
    )

    count = len(reg.view("OperatorRegistry", reg.registry, "quorumOperators"))
    rc = reg.send(acct, reg.registry, _register_calldata(reg, spec, kp, bls.pop_signature(kp, msg)))
    reg.kp[acct.address.lower()] = kp
    oid = bls.operator_id(kp.g1)
    assert [n for n, _ in events(rc)] == [
        "NewPubkeyRegistration",
        "OperatorMetadataURIUpdated",
        "OperatorSocketUpdate",
        "OperatorRegistered",
        "OperatorAddedToQuorums",
        "OperatorStakeUpdate",
        "QuorumIndexUpdate",
    ]
    ev = {n: decode_log(log, n) for n, log in events(rc)}
    assert ev["NewPubkeyRegistration"] == norm((acct.address, kp.g1, kp.g2))
    assert ev["OperatorMetadataURIUpdated"] == norm((acct.address, "ipfs://joiner"))
    assert ev["OperatorSocketUpdate"] == (oid, "joiner:1")
    assert ev["OperatorRegistered"] == norm((acct.address, oid))
    assert ev["OperatorAddedToQuorums"] == norm((acct.address, oid, b"\x00"))
    assert ev["OperatorStakeUpdate"] == (oid, 0, 7 * 10**18)
    assert ev["QuorumIndexUpdate"] == (oid, 0, count)
    assert reg.view("OperatorRegistry", reg.registry, "operatorId", acct.address) == oid
    reverts(
        lambda: reg.send(acct, reg.registry, _register_calldata(reg, spec, kp, bls.pop_signature(kp, msg))),
        "OperatorAlreadyRegistered",
    )
    # the same BLS key cannot serve a second operator
    thief = Account.from_key(keccak(text="thief"))
    rpc(reg.w3, "anvil_setBalance", [thief.address, hex(10**21)])
    msg_t = bls.pubkey_registration_message(thief.address, to_checksum_address(reg.registry), reg.chain_id)
    reverts(
        lambda: reg.send(thief, reg.registry, _register_calldata(reg, spec, kp, bls.pop_signature(kp, msg_t))),
        "PubkeyAlreadyRegistered",
    )


def test_deregistration_and_reregistration(reg: Dev) -> None:
    spec = reg.specs[0]
    acct, kp = deploy.operator_account(spec), deploy.operator_keypair(spec)
    oid = bls.operator_id(kp.g1)
    apk_before = reg.view("OperatorRegistry", reg.registry, "currentApk")
    total_before = reg.view("OperatorRegistry", reg.registry, "currentTotalStake")
    stake = reg.view("OperatorRegistry", reg.registry, "currentStake", acct.address)
    ops_before = reg.view("OperatorRegistry", reg.registry, "quorumOperators")
    rc = reg.send(acct, reg.registry, deploy.calldata("OperatorRegistry", "deregisterOperator"))
    names = [n for n, _ in events(rc)]
    assert names[:2] == ["OperatorRemovedFromQuorums", "OperatorStakeUpdate"] and names[-1] == "OperatorDeregistered"
    ev = [(n, decode_log(log, n)) for n, log in events(rc)]
    assert ev[0][1] == norm((acct.address, oid, b"\x00"))
    assert ev[1][1] == (oid, 0, 0)
    assert ev[-1][1] == norm((acct.address, oid))
    moved = [v for n, v in ev if n == "QuorumIndexUpdate"]
    if ops_before.index(acct.address.lower()) != len(ops_before) - 1:
        last = ops_before[-1]
        assert moved == [(bls.operator_id(reg.kp[last].g1), 0, ops_before.index(acct.address.lower()))]
    assert reg.view("OperatorRegistry", reg.registry, "currentApk") == bls.g1_add(apk_before, bls.g1_neg(kp.g1))
    assert reg.view("OperatorRegistry", reg.registry, "currentTotalStake") == total_before - stake
    assert reg.view("OperatorRegistry", reg.registry, "isRegistered", acct.address) is False
    reverts(
        lambda: reg.send(acct, reg.registry, deploy.calldata("OperatorRegistry", "deregisterOperator")),
        "OperatorNotRegistered",
    )
    # back again with the same key: no second NewPubkeyRegistration, no PoP needed
    rc = reg.send(acct, reg.registry, _register_calldata(reg, spec, kp, (0, 0)))
    assert [n for n, _ in events(rc)][0] == "OperatorMetadataURIUpdated"
    reg.send(acct, reg.registry, deploy.calldata("OperatorRegistry", "deregisterOperator"))
    other = bls.keypair_from_seed(b"new key")
    reverts(
        lambda: reg.send(acct, reg.registry, _register_calldata(reg, spec, other, (0, 0))), "OperatorPubkeyMismatch"
    )
    reg.send(acct, reg.registry, _register_calldata(reg, spec, kp, (0, 0)))


def test_stake_update_and_history(reg: Dev) -> None:
    acct = deploy.operator_account(reg.specs[1])
    oid = bls.operator_id(reg.kp[acct.address.lower()].g1)
    b0 = reg.block()
    old = reg.view("OperatorRegistry", reg.registry, "currentStake", acct.address)
    total0 = reg.view("OperatorRegistry", reg.registry, "currentTotalStake")
    reverts(
        lambda: reg.send(acct, reg.registry, deploy.calldata("OperatorRegistry", "updateStake", acct.address, 1)),
        "OnlyOwner",
    )
    rc = reg.send(reg.deployer, reg.registry, deploy.calldata("OperatorRegistry", "updateStake", acct.address, 3 * old))
    assert only(rc, "OperatorStakeUpdate") == (oid, 0, 3 * old)
    assert reg.view("OperatorRegistry", reg.registry, "operatorStakeAt", acct.address, b0) == (old, True)
    assert reg.view("OperatorRegistry", reg.registry, "operatorStakeAt", acct.address, reg.block()) == (3 * old, True)
    assert reg.view("OperatorRegistry", reg.registry, "totalStakeAt", b0) == total0
    assert reg.view("OperatorRegistry", reg.registry, "currentTotalStake") == total0 + 2 * old
    rc = reg.send(acct, reg.registry, deploy.calldata("OperatorRegistry", "updateSocket", "new:1"))
    assert only(rc, "OperatorSocketUpdate") == (oid, "new:1")
    rc = reg.send(acct, reg.registry, deploy.calldata("OperatorRegistry", "updateMetadataURI", "https://x/y.json"))
    assert only(rc, "OperatorMetadataURIUpdated") == norm((acct.address, "https://x/y.json"))


def test_signatures_are_checked_against_the_set_at_task_creation(reg: Dev) -> None:
    """A task created before an operator joins is signed by the old set; the newcomer cannot be a non-signer."""
    task = reg.new_task(threshold=50)
    reg.create(task)
    quorum = reg.quorum_at(task[2])
    spec = deploy.OperatorSpec("late", keccak(text="late"), 50 * 10**18, "late:1", "")
    deploy.register_operator(reg.w3, reg.registry, spec)
    late = deploy.operator_keypair(spec)
    reg.kp[deploy.operator_account(spec).address.lower()] = late
    resp = reg.response(task)
    digest = pr.response_digest(resp)
    with_late = bls.signature_data(digest, quorum, [late])
    reverts(lambda: reg.respond(task, resp, with_late), "InvalidQuorumApk")
    rc = reg.respond(task, resp, bls.signature_data(digest, quorum, []))
    assert only(rc, "TaskResponded")[1][2] == bls.hash_of_non_signers(task[2], [])


# ------------------------------------------------------------------------------------------------------------------
# policy and client


def test_policy_set_and_client_events(dev: Dev) -> None:
    new_params = {"max_value": "5", "blocked": []}
    before = dev.block()
    pid = deploy.set_client_params(dev.w3, dev.doc, "vault", new_params, 9)
    logs = rpc(
        dev.w3,
        "eth_getLogs",
        [{"fromBlock": hex(before + 1), "toBlock": "latest", "address": [dev.policy_addr, dev.vault]}],
    )
    by = {BY_TOPIC[log["topics"][0]]: log for log in logs}
    info = decode_log(by["PolicySet"], "PolicySet")
    assert info[0] == dev.vault and info[1] == bytes.fromhex(pid[2:])
    pd = tuple(dev.doc["policies"]["screening"]["policy_data"])
    assert info[2] == norm(
        (
            bytes.fromhex(pid[2:]),
            dev.policy_addr,
            dev.deployer,
            "bafy-policy",
            "bafy-schema",
            "lens.test.allow",
            (deploy.params_bytes(new_params), 9),
            pd,
            keccak(POLICY_SRC.encode()),
            "1.2.0",
        )
    )
    assert decode_log(by["PolicyIdUpdated"], "PolicyIdUpdated") == norm((dev.policy_addr, bytes.fromhex(pid[2:])))
    assert dev.view("NewtonPolicy", dev.policy_addr, "getPolicyConfig", bytes.fromhex(pid[2:])) == (
        deploy.params_bytes(new_params),
        9,
    )
    assert dev.view("AgentVault", dev.vault, "supportsInterface", bytes.fromhex("52e18a74")) is True
    # the client's birth events and the policy's metadata event, from the deployment blocks
    logs = rpc(
        dev.w3,
        "eth_getLogs",
        [
            {
                "fromBlock": hex(dev.doc["deployment_block"]),
                "toBlock": hex(before),
                "address": [dev.policy_addr, dev.vault],
            }
        ],
    )
    names = [BY_TOPIC[log["topics"][0]] for log in logs]
    # the policy proxy's birth: Upgraded (implementation set), initialize (Initialized, OwnershipTransferred,
    # policyMetadataCidUpdated), then AdminChanged; the client's PolicyAddressUpdated after it
    assert names[:5] == ["Upgraded", "OwnershipTransferred", "policyMetadataCidUpdated", "Initialized", "AdminChanged"]
    assert "PolicyAddressUpdated" in names
    meta = next(log for log in logs if BY_TOPIC[log["topics"][0]] == "policyMetadataCidUpdated")
    birth = next(log for log in logs if BY_TOPIC[log["topics"][0]] == "PolicyAddressUpdated")
    assert decode_log(birth, "PolicyAddressUpdated") == norm(("0x" + "00" * 20, dev.policy_addr))
    assert decode_log(meta, "policyMetadataCidUpdated") == ("bafy-meta",)
    # setPolicy is owner-only; a new task binds the new policyId
    reverts(lambda: dev.send(dev.agent, dev.vault, deploy.calldata("AgentVault", "setPolicy", (b"{}", 1))), "OnlyOwner")
    task = dev.new_task()
    rc = dev.create(task)
    assert only(rc, "NewTaskCreated")[2] == norm(
        (dev.policy_addr, bytes.fromhex(pid[2:]), (deploy.params_bytes(new_params), 9))
    )
    deploy.set_client_params(dev.w3, dev.doc, "vault", dev.params, 20)


def test_every_deployment_log_is_canonical(w3, dev: Dev) -> None:
    """All logs the deployment emitted (registry, policy, vault, token) carry a known canonical topic0."""
    logs = rpc(
        w3,
        "eth_getLogs",
        [
            {
                "fromBlock": hex(dev.doc["deployment_block"]),
                "toBlock": "latest",
                "address": [dev.registry, dev.policy_addr, dev.vault, dev.tm],
            }
        ],
    )
    seen = set()
    for log in logs:
        name = BY_TOPIC.get(log["topics"][0])
        assert name is not None, log["topics"][0]
        decode_log(log, name)
        seen.add(name)
    assert {"TaskGeneratorAdded", "NewPubkeyRegistration", "OperatorRegistered", "PolicySet"} <= seen
    gen = next(log for log in logs if BY_TOPIC[log["topics"][0]] == "TaskGeneratorAdded")
    assert decode_log(gen, "TaskGeneratorAdded") == (dev.aggregator.lower(),)


def test_reverts_name_the_custom_error_and_its_arguments(dev: Dev) -> None:
    """A failing transaction through devnet.tx raises LensError naming the custom error and its arguments."""
    reverts(
        lambda: dev.send(
            dev.aggregator, dev.registry, deploy.calldata("OperatorRegistry", "addTaskGenerator", dev.aggregator)
        ),
        "OnlyOwner()",
    )
    unknown = keccak(text="never-created")
    reverts(
        lambda: dev.send(dev.agent, dev.vault, pr.record_denial_calldata(unknown)),
        f"TaskNotResponded(0x{unknown.hex()})",
    )


def test_a_mined_revert_is_replayed_for_its_reason(dev: Dev) -> None:
    """With an explicit gas limit nothing is estimated: the tx is mined, fails, and the reason is still named."""
    task, resp, cert, _, _ = dev.allowed_task()
    att = pr.attestation(resp, cert[1])
    dev.execute(att)
    before = dev.block()
    reverts(
        lambda: send_tx(
            dev.w3,
            dev.agent,
            to=to_checksum_address(dev.vault),
            data=pr.execute_calldata(att),
            gas=400_000,
            what="execute",
        ),
        "AttestationAlreadySpent",
    )
    assert dev.block() == before + 1  # it really was mined
