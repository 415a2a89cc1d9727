"""API dialects: each one pure translation between its wire format and the canonical request and events.

The interface: base.py.
"""
