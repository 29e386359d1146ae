"""kserve/components/uri-input: the optional component that turns URI input on for the public Sentinel-2 COG buckets
and STAC APIs. It renders onto prod (kubectl kustomize), touches only the transformer's args, the real transformer
parser takes them, and the policy they build covers real asset and item URLs of both catalogues and nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ci import missing

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "kserve"

# hrefs as the catalogues publish them
EARTH_SEARCH_ASSET = ("https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/31/U/FQ/2023/6/"
                      "S2B_31UFQ_20230612_0_L2A/B02.tif")
EARTH_SEARCH_S3 = "s3://sentinel-cogs/sentinel-s2-l2a-cogs/31/U/FQ/2023/6/S2B_31UFQ_20230612_0_L2A/B11.tif"
EARTH_SEARCH_ITEM = "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_31UFQ_20230612_0_L2A"
PC_ASSET = ("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/31/U/FQ/2023/06/12/"
            "S2B_MSIL2A_20230612T103629_N0509_R008_T31UFQ_20230612T132219.SAFE/GRANULE/L2A_T31UFQ_A032717_20230612T104251/"
            "IMG_DATA/R10m/T31UFQ_20230612T103629_B02_10m.tif?st=2023-06-13&se=2023-06-14&sig=x")
PC_ITEM = "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-2-l2a/items/S2B_MSIL2A_20230612"


def render(tmp_path, component=True) -> dict:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        missing("kubectl is not installed: it renders the kustomize overlays")
    k = {"resources": [os.path.relpath(KSERVE / "overlays" / "prod", tmp_path)]}
    if component:
        k["components"] = [os.path.relpath(KSERVE / "components" / "uri-input", tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(k))
    out = subprocess.run([kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (isvc,) = [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "InferenceService"]
    return isvc


def args_of(spec) -> list[str]:
    (c,) = [c for c in spec["containers"] if c["name"] == "kserve-container"]
    return c["args"]


def test_the_component_adds_only_the_transformers_uri_flags(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, with_uri = render(tmp_path / "a", component=False), render(tmp_path / "b")
    assert with_uri["spec"]["predictor"] == plain["spec"]["predictor"]
    before, after = args_of(plain["spec"]["transformer"]), args_of(with_uri["spec"]["transformer"])
    assert after[:len(before)] == before
    assert all(a.startswith(("--allowed_uri_prefixes=", "--uri_")) for a in after[len(before):])


def test_the_flags_parse_and_allow_the_public_buckets_only(tmp_path):
    from cloudmask.raster import remote
    from transformer import uri_input
    from transformer.__main__ import parse

    args = parse(args_of(render(tmp_path)["spec"]["transformer"]) + ["--predictor_host", "p.cloudmask"])
    pol = uri_input.policy(args)
    assert pol.enabled and not pol.networks  # no private address allowed
    for url in (EARTH_SEARCH_ASSET, EARTH_SEARCH_S3, EARTH_SEARCH_ITEM, PC_ASSET, PC_ITEM):
        u = remote.parse(url)
        assert any(u.under(p) for p in pol.prefixes), url
    for url in ("https://sentinel-cogs-evil.s3.us-west-2.amazonaws.com/B02.tif", "s3://other-bucket/B02.tif",
                "https://sentinel2l2a01.blob.core.windows.net/other-container/B02.tif",
                "http://sentinel-cogs.s3.us-west-2.amazonaws.com/x/B02.tif", "https://169.254.169.254/latest/"):
        u = remote.parse(url)
        assert not any(u.under(p) for p in pol.prefixes), url
    # s3:// reads go to the bucket's own virtual host only
    assert {r.host for r in pol.rules if r.tls} >= {"sentinel-cogs.s3.amazonaws.com",
                                                    "sentinel-cogs.s3.us-west-2.amazonaws.com"}


def test_without_the_component_uri_input_is_off(tmp_path):
    from transformer import uri_input
    from transformer.__main__ import parse

    args = parse(args_of(render(tmp_path, False)["spec"]["transformer"]) + ["--predictor_host", "p.cloudmask"])
    assert not uri_input.policy(args).enabled


@pytest.mark.parametrize("field", ["--allowed_uri_prefixes", "--uri_max_bytes", "--uri_timeout_seconds"])
def test_each_flag_is_set_once(tmp_path, field):
    args = args_of(render(tmp_path)["spec"]["transformer"])
    assert sum(a.startswith(field + "=") for a in args) == 1
