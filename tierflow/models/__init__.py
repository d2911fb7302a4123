"""Pydantic models shared by every face: definitions, trigger requests and responses, statuses."""
