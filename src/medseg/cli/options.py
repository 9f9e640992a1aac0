"""Option helpers the sub-commands share."""

from __future__ import annotations

from typing import Any


def set_dotted(d: dict, key: str, value: Any, problems: list[str], what: str) -> None:
    """Set ``a.b.c`` in a nested config dict; a non-mapping on the way is a problem, not a crash."""
    *parents, leaf = key.split(".")
    node = d
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            problems.append(f"{what}: {'.'.join(parents[:i + 1])} is {child!r} in the config, not a mapping")
            return
        node = child
    node[leaf] = value
