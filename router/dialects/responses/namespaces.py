"""Namespace tools: their functions reach the model as ``NAMESPACE.FUNCTION`` and come back split.

Pure helpers shared by the request translation (offering and history) and the
output items (a model's call of ``multi_agent_v1.close_agent`` is the item
``{"namespace": "multi_agent_v1", "name": "close_agent"}``).
"""

from __future__ import annotations

from collections.abc import Collection

SEPARATOR = "."


def qualified_name(namespace: str | None, name: str) -> str:
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


def split_name(qualified: str, namespaces: Collection[str]) -> tuple[str | None, str]:
    """``(namespace, name)`` of a called tool; only a namespace the request offered splits off."""
    namespace, separator, name = qualified.partition(SEPARATOR)
    if separator and namespace in namespaces and name:
        return namespace, name
    return None, qualified
