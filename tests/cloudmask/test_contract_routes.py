"""cloudmask.contract.route: the band set picks the variant, the level picks the model the gate allowed."""

import json

import pytest

from cloudmask import contract

ROUTES = {"cloudmask": {"cloudmask-6b": {"L1C": "baseline-6b", "L2A": "cloudmask-6b", "unknown": "baseline-6b"}}}


def test_route_by_level():
    six = contract.BANDS_6
    assert contract.route("cloudmask", six, "L1C", ROUTES).name == "baseline-6b"
    assert contract.route("cloudmask", six, "L2A", ROUTES).name == "cloudmask-6b"
    assert contract.route("cloudmask", six, contract.UNKNOWN_LEVEL, ROUTES).name == "baseline-6b"
    # no entry for the 4-band variant: it serves itself
    assert contract.route("cloudmask", contract.BANDS_4, "L1C", ROUTES).name == "cloudmask-4b"
    assert contract.route("baseline", six, "L2A", ROUTES).name == "baseline-6b"
    assert contract.route("cloudmask", ("B02", "B03"), "L2A", ROUTES) is None


def test_route_refuses_a_model_of_other_bands():
    bad = {"cloudmask": {"cloudmask-6b": {"L1C": "baseline-4b"}}}
    with pytest.raises(ValueError, match="same bands"):
        contract.route("cloudmask", contract.BANDS_6, "L1C", bad)


def test_committed_routes_name_known_models_of_the_same_bands():
    doc = json.loads(contract.ROUTES_FILE.read_text())
    for family, variants in doc["routes"].items():
        for variant, table in variants.items():
            assert set(table) == {*contract.LEVELS, contract.UNKNOWN_LEVEL}
            for lvl in table:
                assert contract.route(family, contract.CONTRACTS[variant].bands, lvl, doc["routes"]).bands == \
                    contract.CONTRACTS[variant].bands


def test_load_routes_from_env(tmp_path, monkeypatch):
    p = tmp_path / "routes.json"
    p.write_text(json.dumps({"routes": ROUTES}))
    assert contract.load_routes(p) == ROUTES
    monkeypatch.setenv("CLOUDMASK_ROUTES", str(p))
    assert contract.load_routes() == ROUTES


@pytest.mark.parametrize("bad", [[], {"nofamily": {}}, {"cloudmask": {"cloudmask-6b": {"L3": "baseline-6b"}}},
                                 {"cloudmask": {"cloudmask-6b": {"L1C": "nomodel"}}},
                                 {"cloudmask": {"cloudmask-4b": {"L1C": "baseline-6b"}}}])
def test_check_routes_refuses_bad_tables(bad):
    with pytest.raises(ValueError, match="routes"):
        contract.check_routes(bad)


def test_active_routes_follow_the_env(tmp_path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"routes": ROUTES}))
    b.write_text(json.dumps({"routes": {}}))
    monkeypatch.setenv("CLOUDMASK_ROUTES", str(a))
    assert contract.route("cloudmask", contract.BANDS_6, "L1C").name == "baseline-6b"
    monkeypatch.setenv("CLOUDMASK_ROUTES", str(b))
    assert contract.route("cloudmask", contract.BANDS_6, "L1C").name == "cloudmask-6b"
