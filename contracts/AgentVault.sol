// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {Attestation, PolicyConfig, INewtonPolicy, INewtonPolicyClient, ITaskManagerAttestation} from "./NewtonTypes.sol";

/// @title AgentVault — an "agent treasury vault" policy client (NewtonPolicyClient mixin semantics).
/// @notice Holds ETH and ERC-20 tokens for an agent. It executes a transfer or call (`intent.to.call{value}(data)`)
///         only with a valid, unspent, unexpired attestation for that exact intent (standard mode of
///         newton-contracts §3.5), and lets anyone record a denied task as `IntentDenied`.
contract AgentVault is INewtonPolicyClient {
    event PolicyAddressUpdated(address indexed previousPolicy, address indexed newPolicy);
    event PolicyIdUpdated(address indexed policy, bytes32 indexed policyId);
    event IntentExecuted(bytes32 indexed taskId, address indexed from, address to, uint256 value);
    event IntentDenied(bytes32 indexed taskId, address indexed from);

    error OnlyOwner();
    error SenderNotIntentFrom(address sender, address intentFrom);
    error PolicyIdMismatch(bytes32 expected, bytes32 got);
    error ChainIdMismatch(uint256 expected, uint256 got);
    error InvalidAttestation();
    error ExecutionFailed(bytes returnData);
    error TaskNotResponded(bytes32 taskId);
    error NotADenial(bytes32 taskId);
    error NotThisClient(bytes32 taskId);
    error DenialAlreadyRecorded(bytes32 taskId);

    bytes4 internal constant CLIENT_INTERFACE_ID = 0x52e18a74;
    bytes4 internal constant ERC165_ID = 0x01ffc9a7;

    address internal immutable _taskManager;
    address internal _policy;
    bytes32 internal _policyId;
    address internal _owner;
    mapping(bytes32 => bool) public denialRecorded;

    constructor(address taskManager_, address policy_, address owner_) {
        _taskManager = taskManager_;
        _policy = policy_;
        _owner = owner_;
        emit PolicyAddressUpdated(address(0), policy_);
    }

    receive() external payable {}

    /// @notice Owner binds new params to this client: NewtonPolicy emits PolicySet, this emits PolicyIdUpdated.
    function setPolicy(PolicyConfig calldata config) external returns (bytes32 policyId) {
        if (msg.sender != _owner) revert OnlyOwner();
        policyId = INewtonPolicy(_policy).setPolicy(config);
        _policyId = policyId;
        emit PolicyIdUpdated(_policy, policyId);
    }

    /// @notice Spends the attestation and performs the attested intent from the vault's funds.
    function execute(Attestation calldata attestation) external returns (bytes memory result) {
        if (msg.sender != attestation.intent.from) revert SenderNotIntentFrom(msg.sender, attestation.intent.from);
        if (attestation.policyId != _policyId) revert PolicyIdMismatch(_policyId, attestation.policyId);
        if (attestation.intent.chainId != block.chainid) revert ChainIdMismatch(block.chainid, attestation.intent.chainId);
        if (!ITaskManagerAttestation(_taskManager).validateAttestation(attestation)) revert InvalidAttestation();
        bool ok;
        (ok, result) = attestation.intent.to.call{value: attestation.intent.value}(attestation.intent.data);
        if (!ok) revert ExecutionFailed(result);
        emit IntentExecuted(attestation.taskId, attestation.intent.from, attestation.intent.to, attestation.intent.value);
    }

    /// @notice Records that the operators denied this client's task (reads the stored response).
    function recordDenial(bytes32 taskId) external {
        ITaskManagerAttestation tm = ITaskManagerAttestation(_taskManager);
        (bytes32 digest, bool allow,) = tm.getTaskResponse(taskId);
        if (digest == bytes32(0)) revert TaskNotResponded(taskId);
        if (allow) revert NotADenial(taskId);
        (address client, address from) = tm.getTaskIntentFrom(taskId);
        if (client != address(this)) revert NotThisClient(taskId);
        if (denialRecorded[taskId]) revert DenialAlreadyRecorded(taskId);
        denialRecorded[taskId] = true;
        emit IntentDenied(taskId, from);
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == CLIENT_INTERFACE_ID || interfaceId == ERC165_ID;
    }

    function getPolicyId() external view returns (bytes32) {
        return _policyId;
    }

    function getPolicyAddress() external view returns (address) {
        return _policy;
    }

    function getNewtonPolicyTaskManager() external view returns (address) {
        return _taskManager;
    }

    function getOwner() external view returns (address) {
        return _owner;
    }
}
