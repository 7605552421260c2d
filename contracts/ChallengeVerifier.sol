// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {AccessControlUpgradeable} from "@openzeppelin/contracts-upgradeable/access/AccessControlUpgradeable.sol";
import {ChallengeData, IChallengeVerifier} from "./NewtonTypes.sol";

/// @title ChallengeVerifier — DEVNET STAND-IN for Newton's SP1 zero-knowledge Rego proof.
/// @notice Real Newton resolves a challenge with an SP1 proof that the Rego policy, evaluated on the task's
///         inputs, yields a given result. This devnet contract does NOT verify any ZK proof: instead a trusted
///         resolver key vouches for the correct evaluation. `challenge.data = abi.encode(bytes provenEvaluationResult)`
///         and `challenge.proof` is the resolver's 65-byte ECDSA signature (r, s, v) over the EIP-191 personal-sign
///         hash of keccak256(abi.encode(taskId, keccak256(abi.encode(taskResponse)), provenEvaluationResult)).
///         Upgradeable behind an ERC-1967 proxy; resolvers hold RESOLVER_ROLE (OpenZeppelin AccessControl), so
///         granting and revoking a resolver is on chain as RoleGranted / RoleRevoked.
contract ChallengeVerifier is Initializable, AccessControlUpgradeable, IChallengeVerifier {
    error InvalidChallengeProof();
    error ChallengeTaskIdMismatch();

    bytes32 public constant RESOLVER_ROLE = keccak256("RESOLVER_ROLE");

    constructor() {
        _disableInitializers();
    }

    /// @notice Called once through the proxy by its deployment: `admin` manages roles, `resolver` vouches.
    function initialize(address admin, address resolver) external initializer {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(RESOLVER_ROLE, resolver);
    }

    /// @return provenEvaluationResult the evaluation result the resolver vouches for; reverts if not vouched.
    function verifyChallenge(bytes32 taskId, bytes32 responseDigest, ChallengeData calldata challenge)
        external
        view
        returns (bytes memory provenEvaluationResult)
    {
        if (challenge.taskId != taskId) revert ChallengeTaskIdMismatch();
        provenEvaluationResult = abi.decode(challenge.data, (bytes));
        bytes32 h = keccak256(abi.encode(taskId, responseDigest, provenEvaluationResult));
        bytes32 ethHash = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", h));
        if (!hasRole(RESOLVER_ROLE, _recover(ethHash, challenge.proof))) revert InvalidChallengeProof();
    }

    function _recover(bytes32 digest, bytes calldata sig) internal pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v < 27) v += 27;
        // Reject malleable high-s signatures.
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
