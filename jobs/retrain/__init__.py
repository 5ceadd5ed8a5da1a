"""Retraining: the plan (policy, cooldown, lease), the data, the gate, the registry of versions."""
