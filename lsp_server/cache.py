"""An LRU of finished suggestions that also answers typed-ahead text.

Keys hash the prefix and suffix the model saw. When the user types the first characters of
a suggestion on screen, the document's prefix grows by those characters and the suffix stays
the same; walking back over the newly typed characters finds the earlier entry, and the rest
of its suggestions comes back without running the model.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict


def _key(prefix: str, suffix: str) -> bytes:
    return hashlib.blake2b(f"{len(prefix)}:{prefix}{suffix}".encode(), digest_size=16).digest()


class CompletionCache:
    def __init__(self, capacity: int = 256, lookback: int = 64) -> None:
        self.capacity, self.lookback = capacity, lookback
        self._entries: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()

    def put(self, prefix: str, suffix: str, texts: tuple[str, ...]) -> None:
        key = _key(prefix, suffix)
        self._entries[key] = texts
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, prefix: str, suffix: str) -> tuple[str, ...] | None:
        """Suggestions for this context: stored ones, or the rest of ones typed into."""
        for typed in range(min(self.lookback, len(prefix)) + 1):
            key = _key(prefix[: len(prefix) - typed], suffix)
            texts = self._entries.get(key)
            if texts is None:
                continue
            self._entries.move_to_end(key)
            if not typed:
                return texts
            head = prefix[len(prefix) - typed :]
            rest = tuple(t[typed:] for t in texts if t.startswith(head) and len(t) > typed)
            return rest or None
        return None

    def __len__(self) -> int:
        return len(self._entries)
