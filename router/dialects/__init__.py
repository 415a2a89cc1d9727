"""API dialects: each one pure translation between its wire format and the canonical request and events (see base.py)."""
