"""The `oneshot-lab` command."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point (filled in below)."""
    raise SystemExit("not yet")
