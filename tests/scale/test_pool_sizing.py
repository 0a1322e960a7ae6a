"""segdeploy.scale's pool plan never gives the actors every CPU (Ray Data's read tasks would
wait forever: two actors at num_cpus=1 on 2 CPUs hang), and its listing and resume rules."""

from __future__ import annotations

import pytest

from segdeploy.errors import UsageError
from segdeploy.scale import is_loopback, list_images, mask_targets, plan_pool


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 16, 0.5])
@pytest.mark.parametrize("actors", [None, 1, 2, 4])
def test_actors_always_leave_cpu_for_the_readers(cpus, actors):
    plan = plan_pool(cpus, actors)
    assert plan.actors >= 1 and 0 < plan.num_cpus <= 1
    assert plan.actors * plan.num_cpus <= cpus - min(1.0, cpus / 2) + 1e-9
    assert plan.threads >= 1


def test_two_actors_on_two_cpus_get_half_a_cpu_each():
    assert plan_pool(2, 2).num_cpus == 0.5
    assert plan_pool(2).actors == 1 and plan_pool(2).num_cpus == 1.0
    with pytest.raises(UsageError):
        plan_pool(0)


def test_lists_folders_and_duplicate_targets(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("x.png", "y.jpg", "notes.md"):
        (tmp_path / "a" / name).write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text("# images\na/x.png\n\na/y.jpg\n")
    assert [p.name for p in list_images([tmp_path / "a"])] == ["x.png", "y.jpg"]
    assert list_images([listing]) == [tmp_path / "a/x.png", tmp_path / "a/y.jpg"]
    with pytest.raises(UsageError, match="both write"):
        mask_targets(list_images([tmp_path / "a", listing]), tmp_path / "out")
    with pytest.raises(UsageError, match="does not exist"):
        list_images([tmp_path / "missing"])


def test_loopback_addresses():
    assert is_loopback("127.0.0.1:6379") and is_loopback("ray://localhost:10001")
    assert not is_loopback("10.0.0.5:6379") and not is_loopback("ray://head:10001")
