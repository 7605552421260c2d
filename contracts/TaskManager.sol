// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {BN254} from "./BN254.sol";
import {
    Task,
    TaskResponse,
    ResponseCertificate,
    ChallengeData,
    Attestation,
    Intent,
    PolicyConfig,
    PolicyState,
    PolicyData,
    NonSignerStakesAndSignature,
    INewtonPolicy,
    INewtonPolicyClient,
    IOperatorRegistryView,
    IChallengeVerifier,
    ITaskManagerAttestation
} from "./NewtonTypes.sol";

/// @title TaskManager — devnet NewtonProverTaskManager + AttestationValidator, behind an ERC-1967 proxy.
/// @notice Task lifecycle of Newton Protocol (EVENTS.md §3): createNewTask → respondToTask (BN254 aggregate BLS
///         signature checked on chain with the 0x06/0x07/0x08 precompiles, as EigenLayer's BLSSignatureChecker)
///         → validateAttestation (one-shot spend by the policy client) → raiseAndResolveChallenge.
///         Devnet simplifications: quorum 0 only; stakes and the quorum apk come from OperatorRegistry's per-block
///         history, so the index arrays of NonSignerStakesAndSignature are ignored (may be zero-filled); no pause
///         flags, no BatchTaskManager, no direct (optimistic) path, no TEE attestation (attestationData is only
///         hashed); no signer whitelist. Challenges are resolved by ChallengeVerifier, whose resolver key stands in
///         for Newton's SP1 ZK proof; a challenge succeeds iff the proven result's allow/deny differs from the
///         attested one, and an unsuccessful challenge emits TaskChallengedUnsuccessfully instead of reverting.
///         Upgradeable like Newton's (OpenZeppelin Initializable + Ownable behind a TransparentUpgradeableProxy):
///         TaskManagerV1 emits the 2026-02-11 NewTaskCreated layout, TaskManager (v2) the current one.
abstract contract TaskManagerBase is Initializable, OwnableUpgradeable, ITaskManagerAttestation {
    using BN254 for BN254.G1Point;

    struct ResponseRecord {
        bytes32 responseHash; // keccak256(abi.encode(taskResponse, certificate))
        bytes32 digest; // keccak256(abi.encode(taskResponse)) — the message the operators signed
        bytes32 attestationHash; // keccak256(abi.encode(Attestation)) for allowed tasks, else 0
        bytes32 hashOfNonSigners;
        address policyClient;
        address intentFrom;
        uint32 taskCreatedBlock;
        uint32 referenceBlock;
        uint32 responseExpireBlock;
        bool allow;
        bool spent;
        bool challenged;
    }

    // ---- events (canonical signatures of EVENTS.md §1.1; NewTaskCreated is declared by each version) ----
    event TaskResponded(TaskResponse taskResponse, ResponseCertificate responseCertificate);
    event PolicyDenied(
        address indexed policyClient, bytes32 indexed taskId, bytes32 policyId, bytes32 intentHash, uint32 referenceBlock
    );
    event AttestationSpent(bytes32 indexed taskId, Attestation attestation);
    event TaskChallengedSuccessfully(bytes32 indexed taskId, address indexed challenger);
    event TaskChallengedUnsuccessfully(bytes32 indexed taskId, address indexed challenger);

    // ---- custom errors (every failing path has its own) ----
    error OnlyTaskGenerator(address caller);
    error TaskAlreadyExists(bytes32 taskId);
    error TaskNotFound(bytes32 taskId);
    error TaskMismatch(bytes32 taskId);
    error InvalidIntent();
    error PolicyClientNotSupported(address policyClient);
    error InvalidTaskCreatedBlock(uint32 taskCreatedBlock, uint256 currentBlock);
    error InvalidQuorumThreshold(uint32 quorumThresholdPercentage);
    error UnsupportedQuorumNumbers(bytes quorumNumbers);
    error ResponseDoesNotMatchTask(string field);
    error ResponseWindowClosed(uint256 deadlineBlock, uint256 currentBlock);
    error TaskAlreadyResponded(bytes32 taskId);
    error PolicyAddressMismatch(address expected, address got);
    error PolicyCodeHashMismatch(bytes32 expected, bytes32 got);
    error PolicyConfigMismatch();
    error PolicyDataMismatch(uint256 index);
    error PolicyDataExpired(uint256 index, uint32 expireBlock);
    error InvalidQuorumApkLength();
    error InvalidQuorumApk();
    error NonSignersNotSorted();
    error NonSignerNotRegistered(bytes32 operatorId);
    error PairingPrecompileCallFailed();
    error InvalidSignature();
    error EmptyQuorum(uint32 blockNumber);
    error InsufficientSignedStake(uint96 signedStake, uint96 totalStake, uint32 quorumThresholdPercentage);
    error TaskNotResponded(bytes32 taskId);
    error CallerNotPolicyClient(address caller);
    error TaskChallenged(bytes32 taskId);
    error TaskDenied(bytes32 taskId);
    error AttestationAlreadySpent(bytes32 taskId);
    error AttestationMismatch(bytes32 taskId);
    error AttestationExpired(uint32 expiration, uint256 currentBlock);
    error ResponseMismatch(bytes32 taskId);
    error TaskAlreadyChallenged(bytes32 taskId);
    error ChallengeWindowClosed(uint256 deadlineBlock, uint256 currentBlock);
    error NonSignerHashMismatch(bytes32 expected, bytes32 got);

    bytes4 internal constant CLIENT_INTERFACE_ID = 0x52e18a74;
    string internal constant SLASH_DESCRIPTION = "slash_the_operator";

    // Storage (append-only across versions: a new version adds variables after these, never between them).
    IOperatorRegistryView public operatorRegistry;
    IChallengeVerifier public challengeVerifier;
    uint32 public taskResponseWindowBlock;
    uint32 public taskChallengeWindowBlock;
    uint32 public taskCreationBufferWindow;
    uint16 public slashBps;

    mapping(bytes32 => bytes32) public allTaskHashes;
    mapping(bytes32 => ResponseRecord) public responses;
    mapping(bytes32 => bytes32) public attestationDataHashes;

    /// @notice Called once through the proxy by its deployment (TransparentUpgradeableProxy's init data).
    function initialize(
        address owner_,
        address operatorRegistry_,
        address challengeVerifier_,
        uint32 taskResponseWindowBlock_,
        uint32 taskChallengeWindowBlock_,
        uint32 taskCreationBufferWindow_,
        uint16 slashBps_
    ) external initializer {
        _transferOwnership(owner_);
        operatorRegistry = IOperatorRegistryView(operatorRegistry_);
        challengeVerifier = IChallengeVerifier(challengeVerifier_);
        taskResponseWindowBlock = taskResponseWindowBlock_;
        taskChallengeWindowBlock = taskChallengeWindowBlock_;
        taskCreationBufferWindow = taskCreationBufferWindow_;
        slashBps = slashBps_;
    }

    function version() external pure virtual returns (string memory);

    function _emitNewTaskCreated(bytes32 taskId, Task calldata task, PolicyState memory state) internal virtual;

    modifier onlyTaskGenerator() {
        if (!operatorRegistry.isTaskGenerator(msg.sender)) revert OnlyTaskGenerator(msg.sender);
        _;
    }

    // ================================================================ create

    function createNewTask(Task calldata task) external onlyTaskGenerator {
        bytes32 taskId = task.taskId;
        if (allTaskHashes[taskId] != bytes32(0)) revert TaskAlreadyExists(taskId);
        if (task.intent.from == address(0) || task.intent.to == address(0)) revert InvalidIntent();
        if (!_supportsClientInterface(task.policyClient)) revert PolicyClientNotSupported(task.policyClient);
        uint32 created = task.taskCreatedBlock;
        if (created == 0 || created >= block.number || uint256(created) + taskCreationBufferWindow < block.number) {
            revert InvalidTaskCreatedBlock(created, block.number);
        }
        if (task.quorumThresholdPercentage > 100) revert InvalidQuorumThreshold(task.quorumThresholdPercentage);
        if (keccak256(task.quorumNumbers) != keccak256(hex"00")) revert UnsupportedQuorumNumbers(task.quorumNumbers);
        allTaskHashes[taskId] = keccak256(abi.encode(task));
        _emitNewTaskCreated(taskId, task, _policyState(task.policyClient));
    }

    // ================================================================ respond

    function respondToTask(
        Task calldata task,
        TaskResponse calldata taskResponse,
        bytes calldata signatureData,
        bytes calldata attestationData
    ) external onlyTaskGenerator {
        _checkResponseMatchesTask(task, taskResponse);
        _checkPolicy(taskResponse);
        bytes32 digest = keccak256(abi.encode(taskResponse));
        bytes32 hashOfNonSigners = _verifyQuorum(task, digest, signatureData);
        if (attestationData.length != 0) attestationDataHashes[task.taskId] = keccak256(attestationData);
        _recordResponse(task, taskResponse, digest, hashOfNonSigners, signatureData);
    }

    /// @notice EigenLayer BLSSignatureChecker.checkSignatures for quorum 0 at `referenceBlock`.
    /// @return signedStake stake of the signers; totalStake quorum stake; hashOfNonSigners
    ///         keccak256(abi.encodePacked(referenceBlock, nonSignerPubkeyHashes)).
    function checkSignatures(bytes32 msgHash, uint32 referenceBlock, bytes calldata signatureData)
        public
        view
        returns (uint96 signedStake, uint96 totalStake, bytes32 hashOfNonSigners)
    {
        NonSignerStakesAndSignature memory nss = abi.decode(signatureData, (NonSignerStakesAndSignature));
        if (nss.quorumApks.length != 1) revert InvalidQuorumApkLength();
        BN254.G1Point memory apk = operatorRegistry.apkAt(referenceBlock);
        if (apk.X != nss.quorumApks[0].X || apk.Y != nss.quorumApks[0].Y) revert InvalidQuorumApk();
        totalStake = operatorRegistry.totalStakeAt(referenceBlock);
        if (totalStake == 0) revert EmptyQuorum(referenceBlock);
        uint96 nonSignerStake;
        bytes32[] memory hashes = new bytes32[](nss.nonSignerPubkeys.length);
        for (uint256 i = 0; i < hashes.length; i++) {
            BN254.G1Point memory pk = nss.nonSignerPubkeys[i];
            hashes[i] = BN254.hashG1(pk);
            if (i != 0 && uint256(hashes[i]) <= uint256(hashes[i - 1])) revert NonSignersNotSorted();
            nonSignerStake += _nonSignerStake(hashes[i], referenceBlock);
            apk = apk.plus(BN254.negate(pk));
        }
        signedStake = totalStake - nonSignerStake;
        hashOfNonSigners = keccak256(abi.encodePacked(referenceBlock, hashes));
        (bool pairingSuccessful, bool signatureIsValid) =
            trySignatureAndApkVerification(msgHash, apk, nss.apkG2, nss.sigma);
        if (!pairingSuccessful) revert PairingPrecompileCallFailed();
        if (!signatureIsValid) revert InvalidSignature();
    }

    /// @notice EigenLayer's check with the gamma trick:
    ///         e(sigma + gamma*apk, -G2) * e(H(m) + gamma*G1, apkG2) == 1.
    function trySignatureAndApkVerification(
        bytes32 msgHash,
        BN254.G1Point memory apk,
        BN254.G2Point memory apkG2,
        BN254.G1Point memory sigma
    ) public view returns (bool pairingSuccessful, bool signatureIsValid) {
        uint256 gamma = uint256(
            keccak256(
                abi.encodePacked(
                    msgHash, apk.X, apk.Y, apkG2.X[0], apkG2.X[1], apkG2.Y[0], apkG2.Y[1], sigma.X, sigma.Y
                )
            )
        ) % BN254.FR_MODULUS;
        (pairingSuccessful, signatureIsValid) = BN254.safePairing(
            sigma.plus(apk.scalarMul(gamma)),
            BN254.negGeneratorG2(),
            BN254.hashToG1(msgHash).plus(BN254.generatorG1().scalarMul(gamma)),
            apkG2
        );
    }

    /// @notice The message point operators sign: EigenLayer BN254.hashToG1 (try-and-increment).
    function hashToG1(bytes32 msgHash) external view returns (BN254.G1Point memory) {
        return BN254.hashToG1(msgHash);
    }

    /// @notice EVENTS.md §3.4: abi.encode(true) or abi.encode("true") is an allow; anything else a deny.
    function isCanonicalAllow(bytes memory result) public pure returns (bool) {
        if (result.length == 32) {
            return uint256(bytes32(result)) == 1;
        }
        if (result.length >= 96) {
            uint256 len;
            bytes32 word;
            assembly {
                len := mload(add(result, 64))
                word := mload(add(result, 96))
            }
            return len == 4 && word == bytes32("true");
        }
        return false;
    }

    // ================================================================ attestation

    function validateAttestation(Attestation calldata attestation) external returns (bool) {
        bytes32 taskId = attestation.taskId;
        ResponseRecord storage rec = responses[taskId];
        if (rec.digest == bytes32(0)) revert TaskNotResponded(taskId);
        if (msg.sender != attestation.policyClient || msg.sender != rec.policyClient) {
            revert CallerNotPolicyClient(msg.sender);
        }
        if (rec.challenged) revert TaskChallenged(taskId);
        if (rec.spent) revert AttestationAlreadySpent(taskId);
        if (!rec.allow) revert TaskDenied(taskId);
        if (keccak256(abi.encode(attestation)) != rec.attestationHash) revert AttestationMismatch(taskId);
        if (block.number >= rec.responseExpireBlock) revert AttestationExpired(rec.responseExpireBlock, block.number);
        rec.spent = true;
        emit AttestationSpent(taskId, attestation);
        return true;
    }

    // ================================================================ challenge

    function raiseAndResolveChallenge(
        Task calldata task,
        TaskResponse calldata taskResponse,
        ResponseCertificate calldata responseCertificate,
        ChallengeData calldata challenge,
        BN254.G1Point[] calldata pubkeysOfNonSigningOperators
    ) external {
        bytes32 taskId = task.taskId;
        ResponseRecord storage rec = responses[taskId];
        if (allTaskHashes[taskId] == bytes32(0)) revert TaskNotFound(taskId);
        if (allTaskHashes[taskId] != keccak256(abi.encode(task))) revert TaskMismatch(taskId);
        if (rec.responseHash == bytes32(0)) revert TaskNotResponded(taskId);
        if (rec.responseHash != keccak256(abi.encode(taskResponse, responseCertificate))) revert ResponseMismatch(taskId);
        if (rec.challenged) revert TaskAlreadyChallenged(taskId);
        uint256 deadline = uint256(responseCertificate.referenceBlock) + taskChallengeWindowBlock;
        if (block.number >= deadline) revert ChallengeWindowClosed(deadline, block.number);

        bytes memory proven = challengeVerifier.verifyChallenge(taskId, rec.digest, challenge);
        if (isCanonicalAllow(proven) == isCanonicalAllow(taskResponse.evaluationResult)) {
            emit TaskChallengedUnsuccessfully(taskId, msg.sender);
            return;
        }
        bytes32[] memory nonSigners = _nonSignerHashes(pubkeysOfNonSigningOperators);
        bytes32 h = keccak256(abi.encodePacked(task.taskCreatedBlock, nonSigners));
        if (h != rec.hashOfNonSigners) revert NonSignerHashMismatch(rec.hashOfNonSigners, h);
        rec.challenged = true;
        emit TaskChallengedSuccessfully(taskId, msg.sender);
        _slashSigners(task.taskCreatedBlock, nonSigners);
    }

    // ================================================================ views

    function getTaskResponse(bytes32 taskId)
        external
        view
        returns (bytes32 responseDigest, bool allow, uint32 responseExpireBlock)
    {
        ResponseRecord storage rec = responses[taskId];
        return (rec.digest, rec.allow, rec.responseExpireBlock);
    }

    function getTaskIntentFrom(bytes32 taskId) external view returns (address policyClient, address intentFrom) {
        ResponseRecord storage rec = responses[taskId];
        return (rec.policyClient, rec.intentFrom);
    }

    function isChallenged(bytes32 taskId) external view returns (bool) {
        return responses[taskId].challenged;
    }

    function isSpent(bytes32 taskId) external view returns (bool) {
        return responses[taskId].spent;
    }

    // ================================================================ internals

    function _supportsClientInterface(address client) internal view returns (bool) {
        if (client.code.length == 0) return false;
        (bool ok, bytes memory ret) =
            client.staticcall(abi.encodeWithSelector(0x01ffc9a7, CLIENT_INTERFACE_ID));
        return ok && ret.length >= 32 && abi.decode(ret, (bool));
    }

    function _policyState(address client) internal view returns (PolicyState memory state) {
        state.policyAddress = INewtonPolicyClient(client).getPolicyAddress();
        state.policyId = INewtonPolicyClient(client).getPolicyId();
        state.policyConfig = INewtonPolicy(state.policyAddress).getPolicyConfig(state.policyId);
    }

    function _checkResponseMatchesTask(Task calldata task, TaskResponse calldata r) internal view {
        if (r.taskId != task.taskId) revert ResponseDoesNotMatchTask("taskId");
        if (r.policyClient != task.policyClient) revert ResponseDoesNotMatchTask("policyClient");
        if (r.policyId != r.policyTaskData.policyId) revert ResponseDoesNotMatchTask("policyId");
        if (r.policyAddress != r.policyTaskData.policyAddress) revert ResponseDoesNotMatchTask("policyAddress");
        if (keccak256(abi.encode(r.intent)) != keccak256(abi.encode(task.intent))) {
            revert ResponseDoesNotMatchTask("intent");
        }
        if (keccak256(r.intentSignature) != keccak256(task.intentSignature)) {
            revert ResponseDoesNotMatchTask("intentSignature");
        }
        if (r.initializationTimestamp != task.initializationTimestamp) {
            revert ResponseDoesNotMatchTask("initializationTimestamp");
        }
        uint256 deadline = uint256(task.taskCreatedBlock) + taskResponseWindowBlock;
        if (block.number >= deadline) revert ResponseWindowClosed(deadline, block.number);
        bytes32 stored = allTaskHashes[task.taskId];
        if (stored == bytes32(0)) revert TaskNotFound(task.taskId);
        if (stored != keccak256(abi.encode(task))) revert TaskMismatch(task.taskId);
        if (responses[task.taskId].digest != bytes32(0)) revert TaskAlreadyResponded(task.taskId);
    }

    function _checkPolicy(TaskResponse calldata r) internal view {
        address current = INewtonPolicyClient(r.policyClient).getPolicyAddress();
        if (r.policyAddress != current) revert PolicyAddressMismatch(current, r.policyAddress);
        INewtonPolicy policy = INewtonPolicy(r.policyAddress);
        bytes32 codeHash = policy.getPolicyCodeHash();
        bytes32 got = keccak256(r.policyTaskData.policy);
        if (got != codeHash) revert PolicyCodeHashMismatch(codeHash, got);
        PolicyConfig memory cfg = policy.getPolicyConfig(r.policyId);
        if (keccak256(abi.encode(cfg)) != keccak256(abi.encode(r.policyConfig))) revert PolicyConfigMismatch();
        address[] memory datas = policy.getPolicyData();
        PolicyData[] calldata given = r.policyTaskData.policyData;
        if (given.length != datas.length) revert PolicyDataMismatch(given.length);
        for (uint256 i = 0; i < datas.length; i++) {
            if (given[i].policyDataAddress != datas[i]) revert PolicyDataMismatch(i);
            if (given[i].expireBlock < block.number) revert PolicyDataExpired(i, given[i].expireBlock);
        }
    }

    function _verifyQuorum(Task calldata task, bytes32 digest, bytes calldata signatureData)
        internal
        view
        returns (bytes32 hashOfNonSigners)
    {
        uint96 signedStake;
        uint96 totalStake;
        (signedStake, totalStake, hashOfNonSigners) = checkSignatures(digest, task.taskCreatedBlock, signatureData);
        if (uint256(signedStake) * 100 < uint256(totalStake) * task.quorumThresholdPercentage) {
            revert InsufficientSignedStake(signedStake, totalStake, task.quorumThresholdPercentage);
        }
    }

    function _nonSignerStake(bytes32 pubkeyHash, uint32 referenceBlock) internal view returns (uint96) {
        address op = operatorRegistry.pubkeyHashToOperator(pubkeyHash);
        if (op == address(0)) revert NonSignerNotRegistered(pubkeyHash);
        (uint96 stake, bool registered) = operatorRegistry.operatorStakeAt(op, referenceBlock);
        if (!registered) revert NonSignerNotRegistered(pubkeyHash);
        return stake;
    }

    function _recordResponse(
        Task calldata task,
        TaskResponse calldata r,
        bytes32 digest,
        bytes32 hashOfNonSigners,
        bytes calldata signatureData
    ) internal {
        ResponseCertificate memory cert = ResponseCertificate(
            uint32(block.number), uint32(block.number) + r.policyConfig.expireAfter, hashOfNonSigners, signatureData
        );
        ResponseRecord storage rec = responses[task.taskId];
        rec.responseHash = keccak256(abi.encode(r, cert));
        rec.digest = digest;
        rec.hashOfNonSigners = hashOfNonSigners;
        rec.policyClient = r.policyClient;
        rec.intentFrom = r.intent.from;
        rec.taskCreatedBlock = task.taskCreatedBlock;
        rec.referenceBlock = cert.referenceBlock;
        rec.responseExpireBlock = cert.responseExpireBlock;
        if (isCanonicalAllow(r.evaluationResult)) {
            rec.allow = true;
            rec.attestationHash = keccak256(
                abi.encode(
                    Attestation(r.taskId, r.policyId, r.policyClient, cert.responseExpireBlock, r.intent, r.intentSignature)
                )
            );
        } else {
            emit PolicyDenied(r.policyClient, r.taskId, r.policyId, keccak256(abi.encode(r.intent)), cert.referenceBlock);
        }
        emit TaskResponded(r, cert);
    }

    function _nonSignerHashes(BN254.G1Point[] calldata pks) internal pure returns (bytes32[] memory hashes) {
        hashes = new bytes32[](pks.length);
        for (uint256 i = 0; i < pks.length; i++) {
            hashes[i] = keccak256(abi.encodePacked(pks[i].X, pks[i].Y));
        }
    }

    /// @dev Every operator registered in quorum 0 at taskCreatedBlock that is not a non-signer signed.
    function _slashSigners(uint32 taskCreatedBlock, bytes32[] memory nonSigners) internal {
        uint256 wad = uint256(slashBps) * 1e14; // 10_000 bps = 1e18 wad
        uint256 n = operatorRegistry.operatorCount();
        for (uint256 i = 0; i < n; i++) {
            address op = operatorRegistry.operatorAt(i);
            (, bool registered) = operatorRegistry.operatorStakeAt(op, taskCreatedBlock);
            if (!registered || _contains(nonSigners, operatorRegistry.operatorId(op))) continue;
            operatorRegistry.slashOperator(op, wad, SLASH_DESCRIPTION);
        }
    }

    function _contains(bytes32[] memory xs, bytes32 x) internal pure returns (bool) {
        for (uint256 i = 0; i < xs.length; i++) {
            if (xs[i] == x) return true;
        }
        return false;
    }
}

/// @title TaskManager (v2) — emits the current NewTaskCreated layout (EVENTS.md §1.1).
/// @notice Its own storage is locked by the constructor (`_disableInitializers`): nobody can initialize the
///         implementation contract itself. `initializeV2` runs once through the proxy at the upgrade.
contract TaskManager is TaskManagerBase {
    event NewTaskCreated(bytes32 indexed taskId, Task task, PolicyState state);

    /// @notice The block at which the proxy was upgraded to this version (appended after v1's storage).
    uint32 public upgradedAtBlock;

    constructor() {
        _disableInitializers();
    }

    function initializeV2() external reinitializer(2) {
        upgradedAtBlock = uint32(block.number);
    }

    function version() external pure override returns (string memory) {
        return "2";
    }

    function _emitNewTaskCreated(bytes32 taskId, Task calldata task, PolicyState memory state) internal override {
        emit NewTaskCreated(taskId, task, state);
    }
}
