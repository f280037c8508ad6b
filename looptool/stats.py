"""The statistics the experiment report rests on: how sure an accuracy is, and whether two models
that answered the same items differ by more than chance.

* `wilson_interval`: the Wilson score interval of a proportion. Unlike the normal approximation it
  stays inside [0, 1] and behaves at 0/n and n/n, which small evaluation sets hit.
* `mcnemar_exact`: the exact (binomial) McNemar test for two models scored on the same items. Only
  the discordant items -- right for one model, wrong for the other -- carry information; under the
  null hypothesis each is equally likely to go either way.
* `paired`: both of the above on two runs' per-item outcomes, over the items both runs have.

Pure Python (math.comb, exact integer arithmetic), so the report needs no scipy.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `n` (z = 1.96: 95%), as proportions.

    With no items there is no information: the whole range (0.0, 1.0)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Rounding can push an end a hair past the range at 0/n and n/n.
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: `b` items only model A got right,
    `c` items only model B got right. p = min(1, 2 * P[X <= min(b, c)]) with X ~ Bin(b + c, 1/2);
    1.0 when there is no discordant item."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    # Exact integers until the one division: no float underflow for large n.
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


@dataclass(frozen=True)
class PairedResult:
    """Two models on the items both were scored on."""

    n: int  # items both have
    a_correct: int
    b_correct: int
    only_a: int  # right for A, wrong for B
    only_b: int  # right for B, wrong for A
    dropped: int  # items only one of the two has (left out of everything above)
    p_value: float  # exact McNemar on only_a / only_b

    @property
    def diff_points(self) -> float | None:
        """A's accuracy minus B's, in percentage points; None without items."""
        return 100 * (self.a_correct - self.b_correct) / self.n if self.n else None


def paired(a: Mapping[Hashable, bool], b: Mapping[Hashable, bool]) -> PairedResult:
    """Compare two runs item by item (item id -> passed), on the items both have."""
    common = a.keys() & b.keys()
    only_a = sum(1 for k in common if a[k] and not b[k])
    only_b = sum(1 for k in common if b[k] and not a[k])
    return PairedResult(
        n=len(common),
        a_correct=sum(1 for k in common if a[k]),
        b_correct=sum(1 for k in common if b[k]),
        only_a=only_a,
        only_b=only_b,
        dropped=len(a.keys() ^ b.keys()),
        p_value=mcnemar_exact(only_a, only_b),
    )
