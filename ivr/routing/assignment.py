"""Who takes whom when several callers and agents change at once: an assignment problem, solved by scipy.

The router scores each (caller, agent) pair it shortlisted (value of the match plus the caller's urgency); the
pairs it did not shortlist, or that do not qualify, are not allowed. ``best_assignment`` returns the pairs that
maximise the total score (scipy's ``linear_sum_assignment``, the Hungarian method's modern form: exact, and
fast on the shortlists the router builds — tens of rows, not the whole floor).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

NOT_ALLOWED = -1e9
"""Score of a pair that must not be matched (not shortlisted, does not qualify)."""


def best_assignment(scores: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs maximising the total score, each row and column at most once, never a pair scored
    ``NOT_ALLOWED`` (or NaN). As many pairs as can be made: a row with no allowed column stays unmatched."""
    if scores.size == 0:
        return []
    allowed = np.isfinite(scores) & (scores > NOT_ALLOWED / 2)
    if not allowed.any():
        return []
    # Every allowed pair first (a large bonus), then the best total among those: the matching stays maximal.
    bonus = 1e6
    weights = np.where(allowed, np.nan_to_num(scores, nan=0.0) + bonus, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]
