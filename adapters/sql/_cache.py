"""A bounded cache of validated resources keyed by the exact row they were rendered from."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from fhir.resources.R4B.resource import Resource

__all__ = ["ResourceCache"]


class ResourceCache:
    """Least-recently-used map from (source, row values) to the validated resource.

    The same row rendered by the same mapping always yields the same resource, so a hit is
    exact, never stale: every call still reads the row from the database, only the template
    rendering and FHIR validation are skipped. Cached models are shared between callers and
    must be treated as read-only.
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[Hashable, Resource] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_build(
        self, source: str, row: Mapping[str, Any], build: Callable[[], Resource]
    ) -> Resource:
        """The cached resource for ``row`` of ``source``, building and storing it on a miss."""
        if self._max <= 0:
            return build()
        try:
            key: Hashable = (source, tuple(row.items()))
            hash(key)
        except TypeError:
            return build()  # a column type without a hash (arrays, JSON) is never cached
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        resource = build()
        with self._lock:
            self._entries[key] = resource
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return resource
