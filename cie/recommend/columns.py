"""Growable column tables: parallel numpy arrays with amortised O(1) appends."""

from __future__ import annotations

import numpy as np

INITIAL_CAPACITY = 1024


class ColumnTable:
    """Named numpy columns of equal length that grow by doubling.

    Each column is an attribute that contains the full backing array of
    ``capacity`` rows, of which the first ``size`` rows are data. ``append`` may replace the
    arrays, so fetch a column again after appending rather than keeping one.
    """

    def __init__(self, dtypes: dict[str, str]):
        self.dtypes = dict(dtypes)
        self.size = 0
        for name, dtype in self.dtypes.items():
            setattr(self, name, np.zeros(INITIAL_CAPACITY, dtype=dtype))

    @property
    def capacity(self) -> int:
        return len(getattr(self, next(iter(self.dtypes))))

    def append(self) -> int:
        """Add one zero-filled row and return its index."""
        if self.size == self.capacity:
            new_capacity = self.capacity * 2
            for name in self.dtypes:
                old = getattr(self, name)
                grown = np.zeros(new_capacity, dtype=old.dtype)
                grown[:self.size] = old[:self.size]
                setattr(self, name, grown)
        self.size += 1
        return self.size - 1

    def view(self, name: str) -> np.ndarray:
        """Return the data rows of one column (a view, not a copy)."""
        return getattr(self, name)[:self.size]

    def export(self, prefix: str) -> dict[str, np.ndarray]:
        """Return copies of the data rows, keyed ``<prefix>.<column>`` for the state container."""
        return {f"{prefix}.{name}": self.view(name).copy() for name in self.dtypes}

    def restore(self, prefix: str, arrays: dict[str, np.ndarray]) -> None:
        """Load columns written by ``export``, raising ValueError if one is missing or their lengths differ."""
        sizes = set()
        for name, dtype in self.dtypes.items():
            key = f"{prefix}.{name}"
            if key not in arrays:
                raise ValueError(f"recommender state is missing the column {key!r}")
            sizes.add(len(arrays[key]))
        if len(sizes) != 1:
            raise ValueError(f"columns of {prefix!r} in the recommender state have different lengths: {sorted(sizes)}")
        size = sizes.pop()
        capacity = max(INITIAL_CAPACITY, 1 << max(size - 1, 0).bit_length())
        for name, dtype in self.dtypes.items():
            column = np.zeros(capacity, dtype=dtype)
            column[:size] = arrays[f"{prefix}.{name}"]
            setattr(self, name, column)
        self.size = size
