"""`--shard i/n`: which of the selected problems this machine or CI job solves.

Every problem's test ids are sorted and dealt round-robin: shard i takes the k-th test of the sorted list when
k % n == i.  So the shares are disjoint, cover the whole selection, differ in size by at most one, and depend
only on which tests were selected (not on collection order, the machine or a seed).  A problem's samples stay
together in its test: the test's verdict (the majority answer) needs all of them.  `tir-harness merge`
(cli/merge.py) checks the same rule when it puts shard runs back together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def share(self, test_ids: Iterable[str]) -> set[str]:
        """The test ids of this shard, out of every selected one."""
        ordered = sorted(set(test_ids))
        return set(ordered[self.index :: self.count])


def parse_shard(text: str) -> Shard:
    """`0/2` -> Shard(0, 2); raises ValueError with what is wrong (the caller names the option)."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r}: expected I/N, e.g. 0/4 (shards are numbered from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"{text!r}: I must be between 0 and N-1")
    return Shard(index, count)
