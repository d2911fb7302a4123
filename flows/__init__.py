"""Prefect flows: the trigger (entry point) and one tier. Orchestration only; the work is in the core."""
