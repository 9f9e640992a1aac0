"""What one dataset overview read, kept for the next over the same workspace (the Overview dock refreshing
after each correction, exclusion or QC run reads only what changed).

* Mask facts by the revision's content hash: a workspace's labels are content-addressed (a 2-D mask's blob
  hash, a volume's hash of its grid and slice hashes), so a hit is exact.
* Image facts by the file's path, size and modification time (in nanoseconds), as a workspace tells a
  changed source file (``Workspace.open(verify="stat")``); a folder (a DICOM series) is never cached.

Lookups and stores may come from several threads (the overview's readers): stores take a lock, and two
threads that miss one key compute the same facts.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from medseg.stats.collect import ImageFacts, MaskFacts

# Facts kept per kind: ~1 kB a mask (three small dicts), 16 kB an image whose pixels were sampled; the
# oldest go first beyond it.
MAX_ENTRIES = 100_000


class FactsCache:
    """See the module docstring; ``hits`` and ``misses`` count the lookups since it was made."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._masks: dict[Hashable, MaskFacts] = {}
        self._images: dict[Hashable, ImageFacts] = {}
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def mask(self, key: Hashable, compute: Callable[[], MaskFacts]) -> MaskFacts:
        """The facts stored under ``key`` (a content hash with the class map and kind), else ``compute()``'s."""
        return self._get(self._masks, key, compute)

    def image(self, path: str | Path, decode: bool, compute: Callable[[], ImageFacts]) -> ImageFacts:
        """The facts of the image file at ``path`` as it is now (``decode``: with its pixels sampled)."""
        try:
            st = os.stat(path)
        except OSError:
            return compute()  # the reader says what is wrong with it
        if not stat.S_ISREG(st.st_mode):
            return compute()
        return self._get(self._images, (str(path), st.st_size, st.st_mtime_ns, bool(decode)), compute)

    def _get(self, store: dict, key: Hashable, compute: Callable[[], Any]) -> Any:
        found = store.get(key)
        if found is not None:
            with self._lock:
                self.hits += 1
            return found
        value = compute()
        with self._lock:
            self.misses += 1
            store[key] = value
            while len(store) > self.max_entries:
                del store[next(iter(store))]
        return value
