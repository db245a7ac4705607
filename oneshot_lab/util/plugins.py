"""The lab's installed plug-ins (entry points of the group `oneshot_lab.methods`), named and fingerprinted without
importing them, so that a run's identity changes when a plug-in it may use is installed, removed or edited."""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import metadata
from pathlib import Path

GROUP = "oneshot_lab.methods"  # methods shipped by other packages (see pruning.registry)


def sources(value: str) -> list[Path]:
    """The source files of an entry point's top-level module or package, found without importing it."""
    top = value.partition(":")[0].partition(".")[0].strip()
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return []
    origin = Path(spec.origin)
    return sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]


def fingerprint(point: metadata.EntryPoint) -> str:
    """'distribution version sha' of a plug-in: its distribution and a digest of its source files."""
    digest = hashlib.sha256(point.value.encode())
    for path in sources(point.value):
        try:
            digest.update(path.name.encode() + path.read_bytes())
        except OSError:
            digest.update(b"unreadable " + path.name.encode())
    dist = getattr(point, "dist", None)
    name = f"{dist.name} {dist.version}" if dist is not None else "unknown"
    return f"{name} {digest.hexdigest()[:12]}"


def installed(group: str = GROUP) -> dict[str, str]:
    """{entry point name (and its distribution, where two share a name): fingerprint} of every installed plug-in."""
    points = list(metadata.entry_points(group=group))
    names = [p.name for p in points]
    keys = [p.name if names.count(p.name) == 1 else f"{p.name} ({getattr(p.dist, 'name', p.value)})" for p in points]
    return {key: fingerprint(point) for key, point in sorted(zip(keys, points), key=lambda pair: pair[0])}
