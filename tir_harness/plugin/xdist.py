"""pytest-xdist scheduling for evaluation runs: every worker gets its whole share of problems at once.

xdist's default `load` scheduler hands out a few tests at a time, so a worker would know only the next
couple of problems and its engine would idle.  Here worker k (of n) gets the items k, k+n, k+2n, ... at the
start; the worker's `Runner` computes the same share from its own collection and submits all of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScheduling


def share(n_items: int, index: int, count: int) -> range:
    """The item indices worker `index` of `count` runs: index, index + count, ..."""
    return range(index, n_items, count)


class ShareScheduling(LoadScheduling):
    """Round-robin shares sent up front; a crashed worker's unfinished items go to the others."""

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = next(iter(self.node2collection.values()))
        nodes = sorted(self.nodes, key=lambda node: int(node.gateway.id.removeprefix("gw")))
        for index, node in enumerate(nodes):
            mine = list(share(len(self.collection), index, len(nodes)))
            if mine:
                self.node2pending[node].extend(mine)
                node.send_runtest_some(mine)
        for node in nodes:
            node.shutdown()

    def check_schedule(self, node: Any, duration: float = 0) -> None:
        if self.pending and not node.shutting_down:
            self._send_tests(node, len(self.pending))


class XdistHooks:
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        evaluating = config.getoption("model") or config.getoption("server_url")
        if config.getvalue("dist") == "load" and evaluating:
            return ShareScheduling(config, log)
        return None
