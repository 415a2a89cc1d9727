"""Prompt formats: how a canonical request becomes engine input and engine output becomes canonical events."""
