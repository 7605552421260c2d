"""The policy engine: one regorus-backed evaluator for operators, challenger, replay, explain and what-if."""
