"""The policy engine: one regorus-backed evaluator for operators, challenger, replay, explain and what-if."""

from app.engine.counterfactual import Counterfactual  # noqa: F401
from app.engine.evaluate import (  # noqa: F401
    CompiledPolicy,
    Evaluation,
    PolicyParseError,
    compiled,
    encode_result,
    is_canonical_allow,
    wasm_from_policy_data,
)
from app.engine.explain import Explanation, explain_evaluation  # noqa: F401
from app.engine.intent import Intent, IntentDecodeError, intent_input  # noqa: F401
from app.engine.replay import Replay, TaskRecord, explain, replay, task_from_row  # noqa: F401
