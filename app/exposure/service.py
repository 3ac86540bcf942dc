"""Stored exposure: recomputed for the buyers a change touches, in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable

from app.core.context import Context


def refresh_buyers(ctx: Context, buyer_ids: Iterable[int]) -> None:
    """Recompute the stored exposure rows of these buyers (the cover engine lands with the cover issue)."""
    return None
