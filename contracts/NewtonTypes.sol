// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {BN254} from "./BN254.sol";

/// @title Shared Newton structs, field for field as the current newton-contracts layout
///        (see shared/newton/EVENTS.md §2). Field order is part of every event's canonical signature.

struct Intent {
    address from;
    address to;
    uint256 value;
    bytes data;
    uint256 chainId;
    bytes functionSignature;
}

struct Attestation {
    bytes32 taskId;
    bytes32 policyId;
    address policyClient;
    uint32 expiration;
    Intent intent;
    bytes intentSignature;
}

struct PolicyData {
    bytes wasmArgs;
    bytes data;
    address policyDataAddress;
    uint32 expireBlock;
}

struct PolicyTaskData {
    bytes32 policyId;
    address policyAddress;
    bytes policy;
    PolicyData[] policyData;
}

struct PolicyConfig {
    bytes policyParams;
    uint32 expireAfter;
}

struct PolicyState {
    address policyAddress;
    bytes32 policyId;
    PolicyConfig policyConfig;
}

struct SetPolicyInfo {
    bytes32 policyId;
    address policyAddress;
    address owner;
    string policyCid;
    string schemaCid;
    string entrypoint;
    PolicyConfig policyConfig;
    address[] policyData;
    bytes32 policyCodeHash;
    string version;
}

/// @dev INewtonPolicy.PolicyInfo as NewtonPolicyFactory's PolicyDeployed carries it (EVENTS.md §1.2).
struct PolicyInfo {
    address policyAddress;
    address owner;
    string metadataCid;
    string policyCid;
    string schemaCid;
    string entrypoint;
    address[] policyData;
    bytes32 policyCodeHash;
}

/// @dev The 2026-02-11 Task (EVENTS.md §1.3: no initializationTimestamp), emitted by TaskManagerV1 only.
struct TaskV5 {
    bytes32 taskId;
    address policyClient;
    uint32 taskCreatedBlock;
    uint32 quorumThresholdPercentage;
    Intent intent;
    bytes intentSignature;
    bytes wasmArgs;
    bytes quorumNumbers;
}

struct Task {
    bytes32 taskId;
    address policyClient;
    uint32 taskCreatedBlock;
    uint32 quorumThresholdPercentage;
    Intent intent;
    bytes intentSignature;
    bytes wasmArgs;
    bytes quorumNumbers;
    uint256 initializationTimestamp;
}

struct TaskResponse {
    bytes32 taskId;
    address policyClient;
    bytes32 policyId;
    address policyAddress;
    Intent intent;
    bytes intentSignature;
    bytes evaluationResult;
    PolicyTaskData policyTaskData;
    PolicyConfig policyConfig;
    uint256 initializationTimestamp;
}

struct ResponseCertificate {
    uint32 referenceBlock;
    uint32 responseExpireBlock;
    bytes32 hashOfNonSigners;
    bytes signatureData;
}

struct ChallengeData {
    bytes32 taskId;
    bytes proof;
    bytes data;
}

/// @dev EigenLayer IBLSSignatureChecker.NonSignerStakesAndSignature. The devnet reads stakes and the
///      quorum apk from its own per-block history, so the index arrays may be zero-filled.
struct NonSignerStakesAndSignature {
    uint32[] nonSignerQuorumBitmapIndices;
    BN254.G1Point[] nonSignerPubkeys;
    BN254.G1Point[] quorumApks;
    BN254.G2Point apkG2;
    BN254.G1Point sigma;
    uint32[] quorumApkIndices;
    uint32[] totalStakeIndices;
    uint32[][] nonSignerStakeIndices;
}

interface INewtonPolicy {
    function setPolicy(PolicyConfig calldata config) external returns (bytes32 policyId);
    function getPolicyCodeHash() external view returns (bytes32);
    function getPolicyData() external view returns (address[] memory);
    function getEntrypoint() external view returns (string memory);
    function getPolicyConfig(bytes32 policyId) external view returns (PolicyConfig memory);
}

/// @dev ERC-165 id 0x52e18a74 = XOR of the four selectors below.
interface INewtonPolicyClient {
    function getPolicyId() external view returns (bytes32);
    function getPolicyAddress() external view returns (address);
    function getNewtonPolicyTaskManager() external view returns (address);
    function getOwner() external view returns (address);
}

interface IOperatorRegistryView {
    function isTaskGenerator(address who) external view returns (bool);
    function apkAt(uint32 blockNumber) external view returns (BN254.G1Point memory);
    function totalStakeAt(uint32 blockNumber) external view returns (uint96);
    function operatorStakeAt(address operator, uint32 blockNumber) external view returns (uint96 stake, bool registered);
    function pubkeyHashToOperator(bytes32 pubkeyHash) external view returns (address);
    function operatorCount() external view returns (uint256);
    function operatorAt(uint256 i) external view returns (address);
    function operatorId(address operator) external view returns (bytes32);
    function slashOperator(address operator, uint256 wad, string calldata description) external;
}

interface IChallengeVerifier {
    function verifyChallenge(bytes32 taskId, bytes32 responseDigest, ChallengeData calldata challenge)
        external
        view
        returns (bytes memory provenEvaluationResult);
}

interface ITaskManagerAttestation {
    function validateAttestation(Attestation calldata attestation) external returns (bool);
    function getTaskResponse(bytes32 taskId) external view returns (bytes32 responseDigest, bool allow, uint32 responseExpireBlock);
    function getTaskIntentFrom(bytes32 taskId) external view returns (address policyClient, address intentFrom);
}
