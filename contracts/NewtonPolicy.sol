// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {PolicyConfig, PolicyInfo, SetPolicyInfo, INewtonPolicy} from "./NewtonTypes.sol";

/// @title NewtonPolicy — devnet version of one Newton policy contract (one per policy logic).
/// @notice Holds the policy's identity (Rego CID, params-schema CID, entrypoint, code hash = keccak256 of
///         the Rego source, policy-data oracle addresses) and every client's PolicyConfig by policyId.
///         The implementation behind every policy proxy that NewtonPolicyFactory deploys (as on Newton);
///         the events are the real ones.
contract NewtonPolicy is Initializable, OwnableUpgradeable, INewtonPolicy {
    event PolicySet(address indexed client, bytes32 indexed policyId, SetPolicyInfo policy);
    event policyMetadataCidUpdated(string metadataCid);

    error UnknownPolicyId(bytes32 policyId);

    address public factory;
    string public policyCid;
    string public schemaCid;
    string public entrypoint;
    bytes32 public policyCodeHash;
    string public metadataCid;
    string public version;
    address[] internal _policyData;

    mapping(bytes32 => PolicyConfig) internal _configs;
    mapping(bytes32 => bool) internal _known;
    mapping(address => bytes32) public clientPolicyId;

    constructor() {
        _disableInitializers();
    }

    /// @notice Called once through the proxy by the factory that deployed it (`info.policyAddress` is ignored).
    function initialize(PolicyInfo calldata info, string calldata version_, address factory_) external initializer {
        _transferOwnership(info.owner);
        factory = factory_;
        policyCid = info.policyCid;
        schemaCid = info.schemaCid;
        entrypoint = info.entrypoint;
        policyCodeHash = info.policyCodeHash;
        _policyData = info.policyData;
        metadataCid = info.metadataCid;
        version = version_;
        emit policyMetadataCidUpdated(info.metadataCid);
    }

    /// @notice Binds a new PolicyConfig (params JSON + attestation lifetime) to msg.sender (the client).
    ///         policyId = keccak256(abi.encode(client, policy, owner, policyCid, schemaCid, entrypoint,
    ///         config, policyData, block.timestamp, version)), as in newton-contracts.
    function setPolicy(PolicyConfig calldata config) external returns (bytes32 policyId) {
        PolicyConfig memory cfg = config;
        policyId = keccak256(
            abi.encode(
                msg.sender, address(this), owner(), policyCid, schemaCid, entrypoint, cfg, _policyData,
                block.timestamp, version
            )
        );
        _configs[policyId] = cfg;
        _known[policyId] = true;
        clientPolicyId[msg.sender] = policyId;
        emit PolicySet(msg.sender, policyId, _info(policyId, cfg));
    }

    function setMetadataCid(string calldata metadataCid_) external onlyOwner {
        metadataCid = metadataCid_;
        emit policyMetadataCidUpdated(metadataCid_);
    }

    function getPolicyCodeHash() external view returns (bytes32) {
        return policyCodeHash;
    }

    function getPolicyData() external view returns (address[] memory) {
        return _policyData;
    }

    function getEntrypoint() external view returns (string memory) {
        return entrypoint;
    }

    function getPolicyCid() external view returns (string memory) {
        return policyCid;
    }

    function getSchemaCid() external view returns (string memory) {
        return schemaCid;
    }

    function getMetadataCid() external view returns (string memory) {
        return metadataCid;
    }

    function getPolicyConfig(bytes32 policyId) external view returns (PolicyConfig memory) {
        if (!_known[policyId]) revert UnknownPolicyId(policyId);
        return _configs[policyId];
    }

    function _info(bytes32 policyId, PolicyConfig memory cfg) internal view returns (SetPolicyInfo memory) {
        return SetPolicyInfo(
            policyId, address(this), owner(), policyCid, schemaCid, entrypoint, cfg, _policyData, policyCodeHash, version
        );
    }
}
