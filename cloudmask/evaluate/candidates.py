"""What `cloudmask evaluate` scores: every model under --model-dir (ours and the spectral baselines) and the
peer tools (ukis-csmask variants, DL-L8S2-UV when its weights are there), each loaded only when a scene needs it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from cloudmask import contract


@dataclasses.dataclass
class Candidate:
    name: str  # row label, e.g. "cloudmask-6b v1", "ukis-csmask 6b L1C"
    kind: str  # "ours", "baseline", "peer"
    bands: tuple[str, ...]
    load: Callable[[], Callable[[np.ndarray], np.ndarray]]  # lazy: heavy nets load only when a scene needs them
    level: str | None = None  # product level a peer variant was trained for
    cloud_only: bool = False  # predicts no shadow class
    version: str = ""
    path: Path | None = None  # model folder, for ours and the baselines
    _fn: Callable | None = None

    def fn(self):
        if self._fn is None:
            self._fn = self.load()
        return self._fn


def candidates(model_dir: Path, keep=None, peers: bool = True, dl_l8s2_uv: bool = True) -> list[Candidate]:
    from cloudmask import peers as peer_mod

    out = []
    if model_dir.is_dir():
        from cloudmask.savedmodel import Runner, discover

        for md in discover(model_dir):
            if keep and md.contract.name not in keep:
                continue
            kind = "baseline" if md.contract.name.startswith("baseline") else "ours"
            out.append(Candidate(f"{md.contract.name} v{md.version}", kind, md.contract.bands,
                                 load=lambda p=md.path: Runner(p), version=md.version, path=md.path))
    if peers:
        for level in peer_mod.PRODUCT_LEVELS:
            for bands in (contract.BANDS_6, contract.BANDS_4):
                name = peer_mod.ukis_model_name(bands, level)
                out.append(Candidate(f"ukis-csmask {name[6:8]} {level.upper()}", "peer", bands,
                                     load=lambda b=bands, lv=level: peer_mod.ukis_session(b, lv),
                                     level=level.upper(), version=name))
        if dl_l8s2_uv:
            for bands, fname in peer_mod.DL_L8S2_UV_FILES.items():
                if (peer_mod.dl_l8s2_uv_dir() / fname).is_file():
                    out.append(Candidate(f"DL-L8S2-UV {len(bands)}b", "peer", bands,
                                         load=lambda b=bands: peer_mod.dl_l8s2_uv_session(b),
                                         level="L1C", cloud_only=True, version=fname))
    seen: dict[str, Candidate] = {}
    for c in out:  # results are keyed by name: two folders holding the same model and version would overwrite
        if c.name in seen:
            raise ValueError(f"two candidates are both called {c.name!r}: {seen[c.name].path} and {c.path}; "
                             "give them different versions or score them in separate runs")
        seen[c.name] = c
    return out
