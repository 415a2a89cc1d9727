"""The admin HTTP API under ``/v1/admin/``: keys (create, list, get, update, revoke, rotate), usage, the audit log.

``routes`` (``routes.py``) holds the endpoints, ``bodies`` the request bodies
(pydantic). Every route needs an API key with the ``admin`` role.
"""
