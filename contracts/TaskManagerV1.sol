// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {Task, TaskV5, PolicyState} from "./NewtonTypes.sol";
import {TaskManagerBase} from "./TaskManager.sol";

/// @title TaskManagerV1 — the task manager's first implementation: emits the 2026-02-11 NewTaskCreated layout
///         (EVENTS.md §1.3: Task without initializationTimestamp, plus PolicyState), as Newton's proxies did before
///         an upgrade changed the layout at the same address.
/// @notice DELIBERATELY left without `_disableInitializers()` in a constructor: the implementation contract's own
///         Initializable storage stays uninitialized, so anyone could call `initialize` on it directly. Lens's
///         governance view must flag exactly this (the devnet's negative example).
contract TaskManagerV1 is TaskManagerBase {
    event NewTaskCreated(bytes32 indexed taskId, TaskV5 task, PolicyState state);

    function version() external pure override returns (string memory) {
        return "1";
    }

    function _emitNewTaskCreated(bytes32 taskId, Task calldata task, PolicyState memory state) internal override {
        emit NewTaskCreated(
            taskId,
            TaskV5(
                task.taskId,
                task.policyClient,
                task.taskCreatedBlock,
                task.quorumThresholdPercentage,
                task.intent,
                task.intentSignature,
                task.wasmArgs,
                task.quorumNumbers
            ),
            state
        );
    }
}
