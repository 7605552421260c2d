// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

// OpenZeppelin's proxy plumbing (npm @openzeppelin/contracts, pinned in devnet/tools/package.json), compiled by the
// same solc as the devnet contracts: every upgradeable devnet contract sits behind a TransparentUpgradeableProxy
// (ERC-1967 slots) administered by one ProxyAdmin. TimelockController is there for deployments (and tests) that put
// upgrades behind a delay: the governance view flags an upgrade that took effect with no delay although one exists.
// BeaconProxy / UpgradeableBeacon: the other ERC-1967 shape (the implementation is the beacon's), for such deployments.
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {ProxyAdmin} from "@openzeppelin/contracts/proxy/transparent/ProxyAdmin.sol";
import {BeaconProxy} from "@openzeppelin/contracts/proxy/beacon/BeaconProxy.sol";
import {UpgradeableBeacon} from "@openzeppelin/contracts/proxy/beacon/UpgradeableBeacon.sol";
import {TransparentUpgradeableProxy} from "@openzeppelin/contracts/proxy/transparent/TransparentUpgradeableProxy.sol";
