"""The suggestion cache: exact repeats, typed-ahead reuse, and LRU eviction."""

from __future__ import annotations

from lsp_server.cache import CompletionCache


def test_repeat_returns_the_same_texts():
    cache = CompletionCache()
    cache.put("def f(", ")\n", ("x, y", "a"))
    assert cache.get("def f(", ")\n") == ("x, y", "a")
    assert cache.get("def g(", ")\n") is None
    assert cache.get("def f(", "]\n") is None


def test_typing_the_start_of_a_suggestion_returns_its_rest():
    cache = CompletionCache()
    cache.put("total = ", "\n", ("price * count", "0"))
    assert cache.get("total = pri", "\n") == ("ce * count",)
    assert cache.get("total = price * coun", "\n") == ("t",)


def test_typing_something_else_misses():
    cache = CompletionCache()
    cache.put("total = ", "\n", ("price * count",))
    assert cache.get("total = cost", "\n") is None
    assert cache.get("total = price * count", "\n") is None  # nothing left to suggest


def test_lookback_is_bounded():
    cache = CompletionCache(lookback=4)
    cache.put("x = ", "", ("abcdefgh",))
    assert cache.get("x = abcd", "") == ("efgh",)
    assert cache.get("x = abcde", "") is None


def test_least_recently_used_entry_goes_first():
    cache = CompletionCache(capacity=2)
    cache.put("a", "", ("1",))
    cache.put("b", "", ("2",))
    assert cache.get("a", "") == ("1",)  # a is now the most recent
    cache.put("c", "", ("3",))
    assert cache.get("b", "") is None and cache.get("a", "") == ("1",) and len(cache) == 2


def test_prefix_and_suffix_boundary_is_part_of_the_key():
    cache = CompletionCache(lookback=0)
    cache.put("ab", "c", ("1",))
    assert cache.get("a", "bc") is None
