"""Compacted checkpoints: the same payload bit for bit, smaller, read by load_checkpoint like any other."""

import pytest
import torch

from fakes import make_record, write_record
from se_res2net.training.checkpoint import (COMPACT, checkpoint_epoch, compact_checkpoint, is_compacted, load_checkpoint,
                                            same_payload, save_checkpoint)


def _trained_like(n: int = 50_000, seed: int = 0) -> dict:
    """A payload shaped like the trainer's: weights and momenta spread over a few binades (as trained ones are),
    integer and byte tensors, nested optimiser state with int keys, tuples, and the floats a copy could lose."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, generator=g) * 0.05
    odd = torch.tensor([float("nan"), -0.0, 0.0, float("inf"), -float("inf"), 1e-45])
    return {
        "model": "res2net29", "model_kwargs": {}, "epoch": 7, "config": {"epochs": 30, "milestones": (15, 22)},
        "state_dict": {"conv.weight": w.reshape(100, -1), "bn.num_batches_tracked": torch.tensor(391),
                       "odd": odd, "half": w[:64].to(torch.bfloat16), "empty": torch.zeros(0, 3)},
        "optimizer": {"state": {0: {"momentum_buffer": torch.randn(n, generator=g) * 1e-3}},
                      "param_groups": [{"lr": 0.1, "params": [0]}]},
        "rng": {"torch": torch.randint(0, 255, (5056,), dtype=torch.uint8, generator=g)},
        "record": {"epochs": [{"epoch": e, "test_error": 50.0 / e} for e in range(1, 8)]},
    }


def test_compacting_is_lossless_smaller_and_idempotent(tmp_path):
    path = tmp_path / "a.pt"
    payload = _trained_like()
    save_checkpoint(path, payload)
    plain, plain_size = load_checkpoint(path), path.stat().st_size
    assert checkpoint_epoch(path) == plain["epoch"]

    before, after = compact_checkpoint(path)
    assert checkpoint_epoch(path) == plain["epoch"]  # from the outer dict, the payload not expanded

    assert (before, after) == (plain_size, path.stat().st_size)
    assert after < 0.9 * before  # the sign/exponent plane compresses; the mantissas do not
    assert is_compacted(path) and torch.load(path, weights_only=True)["container"] == COMPACT
    back = load_checkpoint(path)
    assert same_payload(back, plain)
    odd = back["state_dict"]["odd"]
    assert torch.isnan(odd[0]) and torch.signbit(odd[1]) and not torch.signbit(odd[2])
    assert back["state_dict"]["half"].dtype == torch.bfloat16 and back["state_dict"]["empty"].shape == (0, 3)
    assert back["config"]["milestones"] == (15, 22) and list(back["optimizer"]["state"]) == [0]
    assert compact_checkpoint(path) == (after, after)  # compacted already: left as it is


def test_same_payload_tells_a_single_bit_apart():
    a = _trained_like()
    b = _trained_like()
    assert same_payload(a, b)
    b["state_dict"]["odd"][1] = 0.0  # -0.0 -> +0.0: equal as numbers, not as bits
    assert not same_payload(a, b)
    c = _trained_like()
    c["optimizer"]["state"][0]["momentum_buffer"][123] = torch.nextafter(
        c["optimizer"]["state"][0]["momentum_buffer"][123], torch.tensor(1.0))
    assert not same_payload(a, c)
    d = _trained_like()
    d["config"]["milestones"] = [15, 22]  # a list is not the tuple it was
    assert not same_payload(a, d)
    e = _trained_like()
    e["record"]["epochs"][3]["test_error"] += 1e-12
    assert not same_payload(a, e)
    assert not same_payload({"epoch": 7}, {"epoch": 7.0})  # the same number, another type


def test_a_compacted_copy_that_does_not_load_back_the_same_leaves_the_original(tmp_path, monkeypatch):
    import se_res2net.training.checkpoint as ck

    path = tmp_path / "a.pt"
    save_checkpoint(path, _trained_like())
    original = path.read_bytes()
    monkeypatch.setattr(ck, "same_payload", lambda a, b: False)
    with pytest.raises(RuntimeError, match="is kept"):
        compact_checkpoint(path)
    assert path.read_bytes() == original and list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_a_cut_compacted_checkpoint_is_named_corrupt(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, _trained_like())
    compact_checkpoint(path)
    data = torch.load(path, weights_only=True)
    data["blob"] = data["blob"][: len(data["blob"]) // 2]  # the LZMA stream cut in half
    torch.save(data, path)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)


def test_settle_and_finalize_compact_an_unfinished_checkpoint_over_the_limit_so_git_may_hold_it(tmp_path):
    from se_res2net.training.transfer import finalize_runs, settle_checkpoints

    runs, resume = tmp_path / "runs", tmp_path / "resume"
    ck = runs / "full" / "checkpoints"
    for seed, n in ((0, 50_000), (1, 400_000)):
        write_record(runs, make_record("resnet56", seed, None, status="running", logged=3))
        save_checkpoint(ck / f"resnet56_seed{seed}.pt", _trained_like(n, seed))
    plain = {s: load_checkpoint(ck / f"resnet56_seed{s}.pt") for s in (0, 1)}
    sizes = {s: (ck / f"resnet56_seed{s}.pt").stat().st_size for s in (0, 1)}
    # a limit that seed 0 passes only uncompacted, and seed 1 passes even compacted
    limit = int(0.93 * sizes[0])
    assert sizes[1] > limit / 0.75

    done = settle_checkpoints(runs, resume, limit=limit)

    assert done["compacted"] == [str(ck / "resnet56_seed0.pt"), str(ck / "resnet56_seed1.pt")]
    assert done["kept"] == [str(ck / "resnet56_seed0.pt")]  # to commit
    assert done["moved"] == [str(resume / "full" / "checkpoints" / "resnet56_seed1.pt")]  # to carry
    assert (ck / "resnet56_seed0.pt").stat().st_size < limit
    assert same_payload(load_checkpoint(ck / "resnet56_seed0.pt"), plain[0])
    assert same_payload(load_checkpoint(resume / "full" / "checkpoints" / "resnet56_seed1.pt"), plain[1])

    # finalize, for a sweep on this machine: the same, and what stays too big is named
    runs2 = tmp_path / "runs2"
    ck2 = runs2 / "budget" / "checkpoints"
    for seed, n in ((0, 50_000), (1, 400_000)):
        write_record(runs2, make_record("resnet56", seed, None, profile="budget", status="running", logged=3))
        save_checkpoint(ck2 / f"resnet56_seed{seed}.pt", _trained_like(n, seed))
    done = finalize_runs(runs2, limit=limit)
    assert done["compacted"] == [str(ck2 / "resnet56_seed0.pt"), str(ck2 / "resnet56_seed1.pt")]
    assert done["too_big"] == [str(ck2 / "resnet56_seed1.pt")]
    assert same_payload(load_checkpoint(ck2 / "resnet56_seed1.pt"), plain[1])


def test_unfinished_checkpoints_travel_compacted_so_more_fit_and_come_back_the_same(tmp_path):
    """pack sends each unfinished run's checkpoint compacted: within limits where only one would fit as it is,
    two fit, and unpack gives back checkpoints that load to the originals' tensors, bit for bit."""
    from se_res2net.training.checkpoint import compacted_bytes
    from se_res2net.training.transfer import _OVERHEAD, pack_results, unpack_results

    runs = tmp_path / "runs"
    ck = runs / "full" / "checkpoints"
    for seed in (0, 1):
        write_record(runs, make_record("resnet56", seed, None, status="running", logged=5 + seed))
        save_checkpoint(ck / f"resnet56_seed{seed}.pt", _trained_like(300_000, seed))
    plain = {s: (ck / f"resnet56_seed{s}.pt").stat().st_size for s in (0, 1)}
    small = {s: len(compacted_bytes(ck / f"resnet56_seed{s}.pt")) for s in (0, 1)}
    others = sum(p.stat().st_size + 1024 for p in runs.rglob("*.json"))
    room = _OVERHEAD + others + sum(small.values()) + 2 * 1024 + 4096
    assert room < _OVERHEAD + others + min(plain.values()) + max(plain.values())  # uncompacted, one would be left

    out = tmp_path / "out"
    summary = pack_results(out, runs, prefix="book/runs", max_files=1, max_bytes=room, max_total=room)

    assert summary["left_out"] == [] and summary["by_kind"]["checkpoint"] == 2
    dest = tmp_path / "dest"
    unpack_results(out, dest)
    for s in (0, 1):
        back = dest / "book" / "runs" / "full" / "checkpoints" / f"resnet56_seed{s}.pt"
        assert is_compacted(back) and back.stat().st_size == small[s]
        assert same_payload(load_checkpoint(back), load_checkpoint(ck / f"resnet56_seed{s}.pt"))
    assert all(not is_compacted(ck / f"resnet56_seed{s}.pt") for s in (0, 1))  # the sources are not touched


def test_the_checkpoint_of_a_run_in_training_is_not_rewritten_under_its_trainer(tmp_path):
    """A trainer may write a newer checkpoint at any moment: finalize and settle leave a run whose train lock is
    held as it is (compacting or moving the older one would lose an epoch), and finalize compacts it once free."""
    from se_res2net.training.locks import RunLock, train_lock_path
    from se_res2net.training.transfer import finalize_runs, settle_checkpoints

    runs = tmp_path / "runs"
    ck = runs / "budget" / "checkpoints"
    write_record(runs, make_record("resnet56", 0, None, profile="budget", status="running", logged=3))
    save_checkpoint(ck / "resnet56_seed0.pt", _trained_like(50_000))
    original = (ck / "resnet56_seed0.pt").read_bytes()
    limit = len(original) - 1

    with RunLock(train_lock_path(runs / "budget", "resnet56_seed0"), what="se-res2net train"):
        done = finalize_runs(runs, limit=limit)
        assert done["compacted"] == [] and (ck / "resnet56_seed0.pt").read_bytes() == original
        # nor does settling a GPU block's results here move it away to be carried
        done = settle_checkpoints(runs, tmp_path / "resume", limit=limit)
        assert all(v == [] for v in done.values()) and (ck / "resnet56_seed0.pt").read_bytes() == original

    done = finalize_runs(runs, limit=limit)
    assert done["compacted"] == [str(ck / "resnet56_seed0.pt")] and is_compacted(ck / "resnet56_seed0.pt")
    assert not train_lock_path(runs / "budget", "resnet56_seed0").exists()  # no lock file left behind


def test_compacting_reads_the_file_once_and_refuses_a_torch_file_that_is_no_checkpoint(tmp_path, monkeypatch):
    import se_res2net.training.checkpoint as ck

    path = tmp_path / "a.pt"
    save_checkpoint(path, _trained_like())
    reads = []
    real = ck._read
    monkeypatch.setattr(ck, "_read", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    ck.compacted_bytes(path)
    compact_checkpoint(path)
    compact_checkpoint(path)  # compacted already: read, not expanded, left as it is
    assert reads == [path, path, path]
    other = tmp_path / "b.pt"
    torch.save({"state_dict": {}}, other)
    original = other.read_bytes()
    for compact in (ck.compacted_bytes, compact_checkpoint):
        with pytest.raises(ValueError, match="not a se_res2net checkpoint"):
            compact(other)
    assert other.read_bytes() == original


def test_settle_leaves_a_checkpoint_whose_compacted_copy_fails_its_check_and_goes_on(tmp_path, monkeypatch):
    """A compaction that does not load back the same (a bug, RuntimeError) must not stop unpack's settling: the
    checkpoint stays as it was (carried, since it is too big for git) and the other runs are settled."""
    import se_res2net.training.checkpoint as ck_mod
    from se_res2net.training.transfer import settle_checkpoints

    runs, resume = tmp_path / "runs", tmp_path / "resume"
    ck = runs / "full" / "checkpoints"
    write_record(runs, make_record("resnet56", 0, None, status="running", logged=3))
    save_checkpoint(ck / "resnet56_seed0.pt", _trained_like(50_000, 0))
    write_record(runs, make_record("resnet56", 1, 6.0))  # complete: its checkpoint goes
    save_checkpoint(ck / "resnet56_seed1.pt", _trained_like(1_000, 1))
    original = (ck / "resnet56_seed0.pt").read_bytes()
    monkeypatch.setattr(ck_mod, "same_payload", lambda a, b: False)
    done = settle_checkpoints(runs, resume, limit=len(original) - 1)
    assert done["compacted"] == [] and done["removed"] == [str(ck / "resnet56_seed1.pt")]
    moved = resume / "full" / "checkpoints" / "resnet56_seed0.pt"
    assert done["moved"] == [str(moved)] and moved.read_bytes() == original
