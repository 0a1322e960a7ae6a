"""Engine-cache keys (equal build -> equal key, any change -> new key) and the cache folder."""

from __future__ import annotations

import json
import os

import pytest

from segdeploy.digest import sha256_bytes, sha256_file
from segdeploy.engine.engine_cache import EngineCache, cache_key
from segdeploy.errors import UsageError
from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest

BASE = dict(onnx_sha256="a" * 64, tensorrt_version="10.3.0", compute_capability="8.7",
            flags={"precision": "fp16", "workspace_bytes": None,
                   "profiles": [{"min": [1, 3, 64, 64], "opt": [1, 3, 256, 256],
                                 "max": [4, 3, 1024, 1024]}],
                   "precision_choice": {"onnx_source": "given",
                                        "network_flags": ["STRONGLY_TYPED"]}})


def key(**changes):
    args = {**BASE, **changes}
    return cache_key(**args)


def test_identical_builds_share_a_key():
    assert key() == key()
    reordered = dict(reversed(list(BASE["flags"].items())))
    assert key(flags=reordered) == key()  # dict order does not matter
    assert len(key()) == 64 and int(key(), 16) >= 0


@pytest.mark.parametrize("change", [
    {"onnx_sha256": "b" * 64},
    {"tensorrt_version": "10.3.1"},
    {"compute_capability": "8.6"},
    {"flags": {**BASE["flags"], "precision": "fp32"}},
    {"flags": {**BASE["flags"], "workspace_bytes": 1 << 30}},
    {"flags": {**BASE["flags"], "profiles": [{"min": [1, 3, 64, 64], "opt": [1, 3, 256, 256],
                                              "max": [2, 3, 1024, 1024]}]}},
    {"flags": {**BASE["flags"], "version_compatible": True}},
])
def test_any_change_gives_another_key(change):
    assert key(**change) != key()


def test_key_needs_its_inputs_and_plain_values():
    with pytest.raises(ValueError):
        key(compute_capability="")
    with pytest.raises(TypeError):
        key(flags={"x": object()})
    assert key(flags={"t": (1, 2)}) == key(flags={"t": [1, 2]})


def manifest_for(plan: bytes) -> PlanManifest:
    card = ModelCard(arch="unet", num_classes=2, classes=["bg", "fg"])
    return PlanManifest(export=ExportInfo(card=card), tensorrt_version="10.3.0",
                        precision="fp16", profiles=[], io=[], onnx_sha256="a" * 64,
                        plan_sha256=sha256_bytes(plan), build_flags={"precision": "fp16"})


def test_store_then_lookup_round_trips(tmp_path):
    cache = EngineCache(tmp_path / "cache").prepare()
    plan = b"\x01plan bytes" * 100
    assert cache.lookup("k1") is None
    cache.store("k1", plan, manifest_for(plan))
    hit = cache.lookup("k1")
    assert hit is not None and hit[0] == plan
    assert hit[1].to_dict() == manifest_for(plan).to_dict()
    assert sha256_file(cache.paths("k1")[0]) == sha256_bytes(plan)
    assert sorted(p.name for p in cache.folder.iterdir()) == ["k1.plan", "k1.plan.json"]


def test_corrupt_or_half_entries_are_misses(tmp_path):
    cache = EngineCache(tmp_path).prepare()
    plan = b"plan" * 10
    cache.store("k", plan, manifest_for(plan))
    plan_path, json_path = cache.paths("k")
    plan_path.write_bytes(plan[:-1])  # truncated
    assert cache.lookup("k") is None
    plan_path.write_bytes(plan)
    json_path.write_text("{not json")
    assert cache.lookup("k") is None
    json_path.unlink()
    assert cache.lookup("k") is None
    json_path.write_text(json.dumps({**manifest_for(plan).to_dict(), "plan_sha256": ""}))
    assert cache.lookup("k") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_cache_folder_is_a_usage_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(UsageError, match="not writable"):
            EngineCache(folder).prepare()
    finally:
        folder.chmod(0o700)


def test_cache_folder_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot create the engine cache folder"):
        EngineCache(blocker / "sub").prepare()
