"""The local devnet: anvil lifecycle, deployment, operators, agents and the challenger."""
