// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {BN254} from "./BN254.sol";

/// @title OperatorRegistry — devnet stand-in for Newton's OperatorRegistry (SlashingRegistryCoordinator)
///        together with EigenLayer's BLSApkRegistry, StakeRegistry, IndexRegistry and InstantSlasher.
/// @notice Simplifications (devnet only): a single quorum (0); each operator's stake is set by the owner
///         (no EigenLayer strategies, delegation or allocations); registration is open (no whitelist, no
///         epoch queue); slashing reduces the recorded stake directly. Everything that the real contracts
///         keep per block — registration, each operator's stake, the total stake and the quorum aggregate
///         public key (apk) — is kept here as per-block history, so signatures are checked against the
///         operator set at the task's `taskCreatedBlock`. The proof of possession (PoP) is the real
///         EigenLayer check: a BLS signature over `pubkeyRegistrationMessageHash(operator)` with the
///         G1/G2 key-equality pairing.
contract OperatorRegistry {
    using BN254 for BN254.G1Point;

    struct StakeUpdate {
        uint32 blockNumber;
        uint96 stake;
        bool registered;
    }

    struct TotalUpdate {
        uint32 blockNumber;
        uint96 total;
    }

    struct ApkUpdate {
        uint32 blockNumber;
        BN254.G1Point apk;
    }

    bytes32 public constant PUBKEY_REGISTRATION_TYPEHASH = keccak256("BN254PubkeyRegistration(address operator)");
    bytes internal constant QUORUM_ZERO = hex"00";
    uint256 internal constant WAD = 1e18;

    // ---- events (canonical signatures of EVENTS.md §1.4) ----
    event NewPubkeyRegistration(address indexed operator, BN254.G1Point pubkeyG1, BN254.G2Point pubkeyG2);
    event OperatorMetadataURIUpdated(address indexed operator, string metadataURI);
    event OperatorSocketUpdate(bytes32 indexed operatorId, string socket);
    event OperatorRegistered(address indexed operator, bytes32 indexed operatorId);
    event OperatorDeregistered(address indexed operator, bytes32 indexed operatorId);
    event OperatorAddedToQuorums(address operator, bytes32 operatorId, bytes quorumNumbers);
    event OperatorRemovedFromQuorums(address operator, bytes32 operatorId, bytes quorumNumbers);
    event OperatorStakeUpdate(bytes32 indexed operatorId, uint8 quorumNumber, uint96 stake);
    event QuorumIndexUpdate(bytes32 indexed operatorId, uint8 quorumNumber, uint32 newOperatorIndex);
    event OperatorSlashed(
        uint256 indexed slashingRequestId,
        address indexed operator,
        uint32 indexed operatorSetId,
        uint256[] wadsToSlash,
        string description
    );
    event TaskGeneratorAdded(address indexed generator);
    event TaskGeneratorRemoved(address indexed generator);

    // ---- custom errors ----
    error OnlyOwner();
    error OnlyTaskManager();
    error TaskManagerAlreadySet();
    error OperatorAlreadyRegistered();
    error OperatorNotRegistered();
    error ZeroStake();
    error ZeroPubkey();
    error PubkeyAlreadyRegistered();
    error OperatorPubkeyMismatch();
    error InvalidBLSSignatureOrPrivateKey();
    error InvalidSlashWad();

    address public owner;
    address public taskManager;
    uint256 public nextSlashingRequestId;

    mapping(address => bool) public isTaskGenerator;
    mapping(address => BN254.G1Point) internal _pubkeyG1;
    mapping(address => bytes32) internal _operatorId;
    mapping(bytes32 => address) public pubkeyHashToOperator;
    mapping(address => StakeUpdate[]) internal _stakeHistory;
    mapping(address => uint32) internal _quorumIndex;
    TotalUpdate[] internal _totalHistory;
    ApkUpdate[] internal _apkHistory;
    address[] internal _allOperators; // every operator that ever registered (for slashing signers)
    address[] internal _quorumOperators; // current members, by quorum index

    constructor(address owner_) {
        owner = owner_;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert OnlyOwner();
        _;
    }

    // ---------------------------------------------------------------- admin

    /// @notice One-time wiring of the TaskManager, the only caller allowed to slash.
    function setTaskManager(address tm) external onlyOwner {
        if (taskManager != address(0)) revert TaskManagerAlreadySet();
        taskManager = tm;
    }

    function addTaskGenerator(address generator) external onlyOwner {
        isTaskGenerator[generator] = true;
        emit TaskGeneratorAdded(generator);
    }

    function removeTaskGenerator(address generator) external onlyOwner {
        isTaskGenerator[generator] = false;
        emit TaskGeneratorRemoved(generator);
    }

    /// @notice Owner sets an operator's stake (devnet stand-in for delegated strategy shares).
    function updateStake(address operator, uint96 stake) external onlyOwner {
        if (!_isRegistered(operator)) revert OperatorNotRegistered();
        _setStake(operator, stake, true);
    }

    // ---------------------------------------------------------------- operators

    /// @notice Registers msg.sender in quorum 0 with its BLS keys; the first registration checks the
    ///         proof of possession and records the key for good (as BLSApkRegistry does).
    function registerOperator(
        BN254.G1Point calldata pubkeyG1,
        BN254.G2Point calldata pubkeyG2,
        BN254.G1Point calldata pubkeyRegistrationSignature,
        string calldata socket,
        string calldata metadataURI,
        uint96 stake
    ) external {
        address operator = msg.sender;
        if (_isRegistered(operator)) revert OperatorAlreadyRegistered();
        if (stake == 0) revert ZeroStake();
        bytes32 id = _registerPubkey(operator, pubkeyG1, pubkeyG2, pubkeyRegistrationSignature);

        emit OperatorMetadataURIUpdated(operator, metadataURI);
        emit OperatorSocketUpdate(id, socket);
        emit OperatorRegistered(operator, id);
        emit OperatorAddedToQuorums(operator, id, QUORUM_ZERO);

        if (_stakeHistory[operator].length == 0) _allOperators.push(operator);
        _setStake(operator, stake, true);

        uint32 index = uint32(_quorumOperators.length);
        _quorumOperators.push(operator);
        _quorumIndex[operator] = index;
        emit QuorumIndexUpdate(id, 0, index);

        _pushApk(_currentApk().plus(_pubkeyG1[operator]));
    }

    /// @notice msg.sender leaves quorum 0; its stake becomes 0 and its key leaves the apk.
    function deregisterOperator() external {
        address operator = msg.sender;
        if (!_isRegistered(operator)) revert OperatorNotRegistered();
        bytes32 id = _operatorId[operator];
        emit OperatorRemovedFromQuorums(operator, id, QUORUM_ZERO);
        _setStake(operator, 0, false);

        // IndexRegistry semantics: the last operator takes the freed index.
        uint32 index = _quorumIndex[operator];
        uint256 last = _quorumOperators.length - 1;
        if (index != last) {
            address moved = _quorumOperators[last];
            _quorumOperators[index] = moved;
            _quorumIndex[moved] = index;
            emit QuorumIndexUpdate(_operatorId[moved], 0, index);
        }
        _quorumOperators.pop();
        delete _quorumIndex[operator];

        _pushApk(_currentApk().plus(BN254.negate(_pubkeyG1[operator])));
        emit OperatorDeregistered(operator, id);
    }

    function updateSocket(string calldata socket) external {
        if (!_isRegistered(msg.sender)) revert OperatorNotRegistered();
        emit OperatorSocketUpdate(_operatorId[msg.sender], socket);
    }

    function updateMetadataURI(string calldata metadataURI) external {
        if (!_isRegistered(msg.sender)) revert OperatorNotRegistered();
        emit OperatorMetadataURIUpdated(msg.sender, metadataURI);
    }

    /// @notice InstantSlasher stand-in: only the TaskManager, after a successful challenge.
    ///         Reduces the operator's current stake by `wad` (1e18 = 100 %).
    function slashOperator(address operator, uint256 wad, string calldata description) external {
        if (msg.sender != taskManager) revert OnlyTaskManager();
        if (wad > WAD) revert InvalidSlashWad();
        if (!_isRegistered(operator)) return; // already gone: nothing at stake in this devnet
        uint96 stake = _currentStake(operator);
        uint96 reduced = stake - uint96((uint256(stake) * wad) / WAD);
        uint256[] memory wads = new uint256[](1);
        wads[0] = wad;
        emit OperatorSlashed(nextSlashingRequestId++, operator, 0, wads, description);
        _setStake(operator, reduced, true);
    }

    // ---------------------------------------------------------------- views

    function pubkeyRegistrationMessageHash(address operator) public view returns (BN254.G1Point memory) {
        return BN254.hashToG1(keccak256(abi.encode(PUBKEY_REGISTRATION_TYPEHASH, operator, address(this), block.chainid)));
    }

    function operatorId(address operator) external view returns (bytes32) {
        return _operatorId[operator];
    }

    function getOperatorPubkey(address operator) external view returns (BN254.G1Point memory) {
        return _pubkeyG1[operator];
    }

    function isRegistered(address operator) external view returns (bool) {
        return _isRegistered(operator);
    }

    function currentStake(address operator) external view returns (uint96) {
        return _currentStake(operator);
    }

    function currentTotalStake() external view returns (uint96) {
        uint256 n = _totalHistory.length;
        return n == 0 ? 0 : _totalHistory[n - 1].total;
    }

    function currentApk() external view returns (BN254.G1Point memory) {
        return _currentApk();
    }

    function quorumOperators() external view returns (address[] memory) {
        return _quorumOperators;
    }

    function operatorCount() external view returns (uint256) {
        return _allOperators.length;
    }

    function operatorAt(uint256 i) external view returns (address) {
        return _allOperators[i];
    }

    /// @notice Stake and registration of `operator` as of the end of block `blockNumber`.
    function operatorStakeAt(address operator, uint32 blockNumber) external view returns (uint96 stake, bool registered) {
        StakeUpdate[] storage h = _stakeHistory[operator];
        uint256 lo = 0;
        uint256 hi = h.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (h[mid].blockNumber <= blockNumber) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0) return (0, false);
        StakeUpdate storage u = h[lo - 1];
        return (u.stake, u.registered);
    }

    function totalStakeAt(uint32 blockNumber) external view returns (uint96) {
        uint256 lo = 0;
        uint256 hi = _totalHistory.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_totalHistory[mid].blockNumber <= blockNumber) lo = mid + 1;
            else hi = mid;
        }
        return lo == 0 ? 0 : _totalHistory[lo - 1].total;
    }

    function apkAt(uint32 blockNumber) external view returns (BN254.G1Point memory) {
        uint256 lo = 0;
        uint256 hi = _apkHistory.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_apkHistory[mid].blockNumber <= blockNumber) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0) return BN254.G1Point(0, 0);
        return _apkHistory[lo - 1].apk;
    }

    // ---------------------------------------------------------------- internals

    function _registerPubkey(
        address operator,
        BN254.G1Point calldata pk1,
        BN254.G2Point calldata pk2,
        BN254.G1Point calldata sig
    ) internal returns (bytes32 id) {
        id = _operatorId[operator];
        BN254.G1Point memory g1 = pk1;
        bytes32 h = BN254.hashG1(g1);
        if (id != bytes32(0)) {
            // Re-registration: the key is permanent, as in BLSApkRegistry.
            if (h != id) revert OperatorPubkeyMismatch();
            return id;
        }
        if (g1.X == 0 && g1.Y == 0) revert ZeroPubkey();
        if (pubkeyHashToOperator[h] != address(0)) revert PubkeyAlreadyRegistered();
        _checkPossession(operator, g1, pk2, sig);
        _pubkeyG1[operator] = g1;
        _operatorId[operator] = h;
        pubkeyHashToOperator[h] = operator;
        emit NewPubkeyRegistration(operator, g1, pk2);
        return h;
    }

    /// @dev EigenLayer BLSApkRegistry PoP: e(sig + gamma*pk1, -G2) * e(H(m) + gamma*G1, pk2) == 1 proves both
    ///      that the signer knows the secret and that pk1 and pk2 share it.
    function _checkPossession(
        address operator,
        BN254.G1Point memory pk1,
        BN254.G2Point calldata pk2,
        BN254.G1Point calldata sig
    ) internal view {
        BN254.G1Point memory m = pubkeyRegistrationMessageHash(operator);
        uint256 gamma = uint256(
            keccak256(abi.encodePacked(sig.X, sig.Y, pk1.X, pk1.Y, pk2.X, pk2.Y, m.X, m.Y))
        ) % BN254.FR_MODULUS;
        BN254.G1Point memory s = sig;
        BN254.G2Point memory p2 = pk2;
        (bool success, bool valid) = BN254.safePairing(
            s.plus(pk1.scalarMul(gamma)),
            BN254.negGeneratorG2(),
            m.plus(BN254.generatorG1().scalarMul(gamma)),
            p2
        );
        if (!success || !valid) revert InvalidBLSSignatureOrPrivateKey();
    }

    function _isRegistered(address operator) internal view returns (bool) {
        uint256 n = _stakeHistory[operator].length;
        return n != 0 && _stakeHistory[operator][n - 1].registered;
    }

    function _currentStake(address operator) internal view returns (uint96) {
        uint256 n = _stakeHistory[operator].length;
        return n == 0 ? 0 : _stakeHistory[operator][n - 1].stake;
    }

    function _currentApk() internal view returns (BN254.G1Point memory) {
        uint256 n = _apkHistory.length;
        return n == 0 ? BN254.G1Point(0, 0) : _apkHistory[n - 1].apk;
    }

    function _setStake(address operator, uint96 stake, bool registered) internal {
        uint96 old = _currentStake(operator);
        StakeUpdate[] storage h = _stakeHistory[operator];
        uint32 b = uint32(block.number);
        if (h.length != 0 && h[h.length - 1].blockNumber == b) {
            h[h.length - 1] = StakeUpdate(b, stake, registered);
        } else {
            h.push(StakeUpdate(b, stake, registered));
        }
        uint256 n = _totalHistory.length;
        uint96 total = (n == 0 ? 0 : _totalHistory[n - 1].total) - old + stake;
        if (n != 0 && _totalHistory[n - 1].blockNumber == b) _totalHistory[n - 1].total = total;
        else _totalHistory.push(TotalUpdate(b, total));
        emit OperatorStakeUpdate(_operatorId[operator], 0, stake);
    }

    function _pushApk(BN254.G1Point memory apk) internal {
        uint32 b = uint32(block.number);
        uint256 n = _apkHistory.length;
        if (n != 0 && _apkHistory[n - 1].blockNumber == b) _apkHistory[n - 1].apk = apk;
        else _apkHistory.push(ApkUpdate(b, apk));
    }
}
