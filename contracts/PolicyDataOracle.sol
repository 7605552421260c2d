// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title PolicyDataOracle — devnet placeholder for a NewtonPolicyData contract (one per data provider).
/// @notice Real Newton policy data contracts point at a WASM oracle; on the devnet the oracle output is
///         produced off chain by the simulation and carried in `PolicyData.data`. This contract only gives
///         each provider name ("sanctions", "kyc", "market", "spend") a real address.
contract PolicyDataOracle {
    string public name;
    address public owner;
    uint32 public expireAfter;

    constructor(string memory name_, address owner_, uint32 expireAfter_) {
        name = name_;
        owner = owner_;
        expireAfter = expireAfter_;
    }
}
