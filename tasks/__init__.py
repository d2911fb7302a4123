"""Prefect tasks: thin wrappers that call the core (one task per bucket, tier step or chunk)."""
