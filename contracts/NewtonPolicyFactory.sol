// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {TransparentUpgradeableProxy} from "@openzeppelin/contracts/proxy/transparent/TransparentUpgradeableProxy.sol";
import {PolicyInfo} from "./NewtonTypes.sol";
import {NewtonPolicy} from "./NewtonPolicy.sol";

/// @title NewtonPolicyFactory — devnet version of Newton's policy factory.
/// @notice Deploys each policy as a TransparentUpgradeableProxy (CREATE2) over the current NewtonPolicy
///         implementation, administered by the devnet's ProxyAdmin and initialized in the same transaction, and
///         emits PolicyDeployed and ImplementationUpdated with exactly the canonical signatures of EVENTS.md §1.2.
contract NewtonPolicyFactory is Ownable {
    event PolicyDeployed(address policy, PolicyInfo policyInfo, string implementationVersion);
    event ImplementationUpdated(address indexed oldImplementation, address indexed newImplementation);

    address public implementation;
    address public proxyAdmin;
    string public implementationVersion;
    uint256 public deployedCount;

    constructor(address implementation_, address proxyAdmin_, string memory implementationVersion_) {
        implementation = implementation_;
        proxyAdmin = proxyAdmin_;
        implementationVersion = implementationVersion_;
        emit ImplementationUpdated(address(0), implementation_);
    }

    /// @notice Point future deployments at a new NewtonPolicy implementation (existing proxies are unchanged).
    function setImplementation(address implementation_, string calldata implementationVersion_) external onlyOwner {
        emit ImplementationUpdated(implementation, implementation_);
        implementation = implementation_;
        implementationVersion = implementationVersion_;
    }

    /// @notice Deploy and initialize one policy proxy; `info.policyAddress` is ignored (the new proxy's address
    ///         is filled in). `version` is the policy's own version string (SetPolicyInfo.version).
    function deployPolicy(PolicyInfo calldata info, string calldata version) external returns (address policy) {
        bytes32 salt = keccak256(abi.encode(msg.sender, info.owner, info.policyCodeHash, deployedCount));
        deployedCount += 1;
        bytes memory init = abi.encodeCall(NewtonPolicy.initialize, (info, version, address(this)));
        policy = address(new TransparentUpgradeableProxy{salt: salt}(implementation, proxyAdmin, init));
        PolicyInfo memory deployed = info;
        deployed.policyAddress = policy;
        emit PolicyDeployed(policy, deployed, implementationVersion);
    }
}
