"""The bounded caches of the request paths forget the least recently used entry first."""

from __future__ import annotations

import pytest

from sitemail.lru import LruCache


def test_the_least_recently_used_entry_goes_first() -> None:
    kept: LruCache[str, int] = LruCache(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1  # "a" is now the newest
    kept.put("c", 3)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (1, None, 3)
    kept.put("a", 4)  # a new value for a kept key replaces it
    assert kept.get("a") == 4 and len(kept) == 2


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError):
        LruCache(0)
