"""Resuming in the next GPU block: which checkpoints are committed, carried or deleted; which call carries what."""

import io
import json
import subprocess
from pathlib import Path

import pytest

from fakes import make_record, write_record
from se_res2net.training.transfer import (CALL_LIMIT, MAX_CARRY, carry_plan_text, part_size_for, plan_carry,
                                          settle_checkpoints)

MiB = 1 << 20


def _ckpt(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x01" * size)
    return path


def test_settle_deletes_complete_runs_checkpoints_and_moves_big_unfinished_ones_out_of_git(tmp_path):
    runs, resume = tmp_path / "book" / "runs", tmp_path / ".xfer" / "resume"
    write_record(runs, make_record("resnet56", 0, 6.5))  # complete
    write_record(runs, make_record("se_resnet110", 0, None, status="running"))
    write_record(runs, make_record("res2net29", 0, None, status="running"))
    ck = runs / "full" / "checkpoints"
    _ckpt(ck / "resnet56_seed0.pt", 10)  # complete: not needed any more
    _ckpt(ck / "se_resnet110_seed0.pt", 100)  # unfinished, at the limit: carried
    _ckpt(ck / "res2net29_seed0.pt", 99)  # unfinished, under the limit: committed
    _ckpt(ck / "densenet_bc100_seed0.pt", 5)  # no record yet (it never logged an epoch): kept
    _ckpt(resume / "full" / "checkpoints" / "resnet56_seed0.pt", 200)  # carried earlier; the run has completed
    _ckpt(resume / "full" / "checkpoints" / "resnet56_seed1.pt", 200)  # carried earlier, still unfinished

    done = settle_checkpoints(runs, resume, limit=100)

    assert sorted(Path(p).name for p in done["removed"]) == ["resnet56_seed0.pt", "resnet56_seed0.pt"]
    assert done["moved"] == [str(resume / "full" / "checkpoints" / "se_resnet110_seed0.pt")]
    assert sorted(Path(p).name for p in done["kept"]) == ["densenet_bc100_seed0.pt", "res2net29_seed0.pt"]
    assert [Path(p).name for p in done["carried"]] == ["resnet56_seed1.pt"]
    assert sorted(p.name for p in ck.glob("*.pt")) == ["densenet_bc100_seed0.pt", "res2net29_seed0.pt"]
    assert sorted(p.name for p in (resume / "full" / "checkpoints").glob("*.pt")) == [
        "resnet56_seed1.pt", "se_resnet110_seed0.pt"]
    assert (resume / "full" / "checkpoints" / "se_resnet110_seed0.pt").read_bytes() == b"\x01" * 100
    assert done["compacted"] == []  # not checkpoints at all: left as they are, with a warning
    assert settle_checkpoints(runs, resume, limit=100) == {  # settled: a second pass changes nothing
        "removed": [], "compacted": [], "moved": [], "kept": done["kept"],
        "carried": sorted(done["carried"] + done["moved"])}


def test_finalize_turns_a_complete_runs_checkpoint_into_checked_weights_and_never_overwrites_others(tmp_path, capsys):
    """A sweep on this machine: the complete run keeps its model state only (what test and grad-cam take), its
    checkpoint goes; an unfinished one stays, and one too big for git is named."""
    import argparse

    import torch

    from se_res2net.training.checkpoint import load_checkpoint, save_checkpoint
    from se_res2net.training.transfer import add_finalize_arguments, finalize_runs, run_finalize

    runs = tmp_path / "runs"
    ck = runs / "budget" / "checkpoints"
    write_record(runs, make_record("res2net29", 0, 9.6, profile="budget"))  # complete, 30 epochs
    state = {"w": torch.arange(4.0), "b": torch.ones(2)}
    save_checkpoint(ck / "res2net29_seed0.pt", {"model": "res2net29", "model_kwargs": {}, "state_dict": state,
                                                 "epoch": 30, "config": {"epochs": 30},
                                                 "optimizer": {"momentum": torch.zeros(1000)}})
    write_record(runs, make_record("resnet56", 0, None, profile="budget", status="running", logged=2))
    _ckpt(ck / "resnet56_seed0.pt", 100)  # unfinished, at the limit: git must not hold it
    write_record(runs, make_record("se_res2net29", 0, None, profile="budget", status="running", logged=2))
    _ckpt(ck / "se_res2net29_seed0.pt", 99)  # unfinished, under it: stays, committed

    done = finalize_runs(runs, limit=100)

    weights = runs / "budget" / "weights" / "res2net29_seed0.pt"
    assert done == {"written": [str(weights)], "unchanged": [], "removed": [str(ck / "res2net29_seed0.pt")],
                    "compacted": [], "too_big": [str(ck / "resnet56_seed0.pt")]}
    slim = load_checkpoint(weights)
    assert "optimizer" not in slim and slim["epoch"] == 30 and slim["model"] == "res2net29"
    assert all(torch.equal(slim["state_dict"][k], state[k]) for k in state) and slim["state_dict"].keys() == state.keys()
    assert sorted(p.name for p in ck.glob("*.pt")) == ["resnet56_seed0.pt", "se_res2net29_seed0.pt"]
    assert finalize_runs(runs, limit=100)["written"] == []  # done: a second pass writes nothing

    # a checkpoint of the same run again, other tensors: the weights there are kept unless --force
    other = {"w": torch.zeros(4), "b": torch.ones(2)}
    save_checkpoint(ck / "res2net29_seed0.pt", {"model": "res2net29", "model_kwargs": {}, "state_dict": other,
                                                 "epoch": 30})
    before = weights.read_bytes()
    with pytest.raises(FileExistsError, match="--force"):
        finalize_runs(runs, limit=100)
    assert weights.read_bytes() == before and (ck / "res2net29_seed0.pt").exists()
    assert finalize_runs(runs, limit=100, force=True)["written"] == [str(weights)]
    assert torch.equal(load_checkpoint(weights)["state_dict"]["w"], torch.zeros(4))

    # the checkpoint of an earlier epoch is not the run's final one: named, nothing written
    save_checkpoint(ck / "res2net29_seed0.pt", {"model": "res2net29", "model_kwargs": {}, "state_dict": state,
                                                 "epoch": 29})
    with pytest.raises(ValueError, match="epoch 29.*ends res2net29 at epoch 30"):
        finalize_runs(runs, limit=100, force=True)
    assert torch.equal(load_checkpoint(weights)["state_dict"]["w"], torch.zeros(4))

    (ck / "res2net29_seed0.pt").unlink()
    p = argparse.ArgumentParser()
    add_finalize_arguments(p)
    assert run_finalize(p.parse_args(["--runs-root", str(runs)])) == 0
    assert "no checkpoint of a complete run" in capsys.readouterr().out  # the unfinished ones are under 6 MB

def test_plan_carry_fits_each_call_beside_the_working_tree():
    tree = 20 * MiB
    parts = [("data/part-00", 30 * MiB), ("data/part-01", 30 * MiB), ("data/part-02", 12 * MiB),
             ("wheels", 19 * MiB), ("meta", 1000), ("resume/a.pt", 14 * MiB)]
    calls = plan_carry(tree, parts)
    room = CALL_LIMIT - MiB - tree
    assert all(sum(n for _, n in call) <= room and len(call) <= MAX_CARRY for call in calls)
    assert sorted(p for call in calls for p in call) == sorted(parts)  # everything, once
    assert len(calls) == 3  # 106 MiB in calls of at most 43 MiB
    # eight paths at most per call, whatever their size
    assert [len(c) for c in plan_carry(0, [(f"f{i}", 1) for i in range(10)])] == [8, 2]


def test_plan_carry_names_the_fix_when_something_cannot_travel():
    with pytest.raises(ValueError, match=r"data/part-00 \(50.0 MiB\) does not fit .* split SRC_DIR PARTS_DIR 43M"):
        plan_carry(20 * MiB, [("data/part-00", 50 * MiB)])
    with pytest.raises(ValueError, match="the working tree alone is 70.0 MiB"):
        plan_carry(70 * MiB, [("meta", 10)])


def test_part_size_for_travels_in_the_fewest_calls_beside_the_tree_at_hand():
    data, wheels, meta = 130 * MiB, ("wheels", 19 * MiB), ("meta", 60_000)
    # the tree of stop 26 (15.6 MiB with two budget checkpoints): 47 MiB parts; 50 MiB ones did not fit at all
    size, calls = part_size_for(int(15.6 * MiB), data, [wheels, meta])
    assert (size, calls) == (47 * MiB, 4)
    # the tree without those checkpoints: larger parts, one call fewer
    assert part_size_for(5 * MiB, data, [wheels, meta]) == (58 * MiB, 3)
    for tree in (0, 5 * MiB, int(15.6 * MiB), 30 * MiB):
        size, calls = part_size_for(tree, data, [wheels, meta])
        full, rest = divmod(data, size)
        parts = [("p", size)] * full + [("p", rest)] * bool(rest)
        assert len(plan_carry(tree, parts + [wheels, meta])) == calls  # the plan `calls` prints
        # no part size gives fewer calls, and none larger gives as few
        for other in range(MiB, CALL_LIMIT - MiB - tree + 1, MiB):
            f, r = divmod(data, other)
            n = len(plan_carry(tree, [("p", other)] * f + [("p", r)] * bool(r) + [wheels, meta]))
            assert n > calls or (n == calls and other <= size)


def test_part_size_for_names_what_cannot_travel():
    with pytest.raises(ValueError, match=r"wheels \(50.0 MiB\) does not fit"):
        part_size_for(20 * MiB, 130 * MiB, [("wheels", 50 * MiB)])
    with pytest.raises(ValueError, match="working tree alone"):
        part_size_for(70 * MiB, 130 * MiB)
    with pytest.raises(ValueError, match="do not fit in 100 parts"):
        part_size_for(62 * MiB, 130 * MiB)  # 1 MiB left a call: 130 parts


def test_calls_step_prints_the_plan_for_this_checkout(tmp_path):
    """`gpu-runbook.sh calls` sizes the real working tree (what git sends) and plans the carried paths."""
    from se_res2net.training.transfer import working_tree_bytes

    root = Path(__file__).resolve().parents[1]
    # parts sized to the room this tree leaves (it grows while unfinished checkpoints are committed): two big
    # ones cannot share a call, the small one fits beside either
    room = CALL_LIMIT - working_tree_bytes(root)
    assert room > 8 * MiB, f"the working tree leaves {room / MiB:.1f} MiB of a device call: too little to carry data"
    data = tmp_path / ".xfer" / "data"
    for i, size in enumerate((int(room * 0.6), int(room * 0.6), int(room * 0.2))):
        _ckpt(data / f"part-0{i}", size)
    text = carry_plan_text(root, [data / "part-00", data / "part-01", data / "part-02"])
    assert text.startswith("working tree ") and "2 call(s)" in text
    assert text.count(f"stash {data}") == 2 and text.count("setup && scripts/gpu-runbook.sh block") == 1
    out = subprocess.run(["bash", str(root / "scripts" / "gpu-runbook.sh"), "calls", str(data / "part-00")],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    assert "1 call(s)" in out and f"carry: {data / 'part-00'}" in out
    # a compile cache brought back by an earlier block travels in its own folder, which `stash` takes
    cache = tmp_path / ".xfer" / "compile-cache"
    _ckpt(cache / "inductor.tar.gz", 1000)
    text = carry_plan_text(root, [data / "part-02", cache / "inductor.tar.gz"])
    assert f"stash {data} {cache} && scripts/gpu-runbook.sh setup" in text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        carry_plan_text(root, [tmp_path / "nope"])


def test_the_repository_holds_no_checkpoint_or_weights_over_its_limits():
    """Unfinished checkpoints < 6 MB (bigger ones travel as carried files), final weights < 8 MB."""
    from se_res2net.training.transfer import COMMIT_LIMIT

    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", "book/runs"], capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    limits = {"checkpoints": COMMIT_LIMIT, "weights": 8_000_000}
    over = [(name, (root / name).stat().st_size) for name in listed.stdout.decode().split("\0")
            if name.endswith(".pt") and Path(name).parent.name in limits
            and (root / name).stat().st_size >= limits[Path(name).parent.name]]
    assert not over, f"too big for the repository: {over}"


def test_git_ignores_exactly_the_checkpoints_of_models_too_big_to_commit():
    """A run's checkpoint holds its weights and SGD momentum (4 bytes each per parameter) and its buffers: the
    models where that reaches COMMIT_LIMIT even compacted as far as floats go are the ones .gitignore keeps out
    of git, and no other (resnet56 and densenet_bc100 pass the limit uncompacted, and may fit compacted)."""
    from se_res2net.models.registry import create_model, list_models
    from se_res2net.training.transfer import COMMIT_LIMIT, INCOMPRESSIBLE

    root = Path(__file__).resolve().parents[1]
    paths = {m: f"book/runs/budget/checkpoints/{m}_seed0.pt" for m in list_models()}
    proc = subprocess.run(["git", "-C", str(root), "check-ignore", "--no-index", "--stdin"],
                          input="\n".join(paths.values()), capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        pytest.skip("not a git checkout")
    ignored = set(proc.stdout.split())
    wrong = []
    for m, path in paths.items():
        net = create_model(m)
        floor = 8 * sum(p.numel() for p in net.parameters()) + 4 * sum(b.numel() for b in net.buffers())
        if (INCOMPRESSIBLE * floor >= COMMIT_LIMIT) != (path in ignored):
            wrong.append((m, floor, path in ignored))
    assert not wrong, f"(model, bytes of weights+momentum+buffers, ignored by git) that disagree: {wrong}"

def test_pack_stays_within_the_total_and_leaves_out_the_least_trained_checkpoints(tmp_path):
    """The machine returns 64 MiB at most: records first, then the checkpoints of the furthest trained runs."""
    from se_res2net.training.transfer import MAX_TOTAL, collect, plan_archives

    runs = tmp_path / "runs"
    for seed, logged in enumerate((3, 120, 40, 250, 7, 90)):
        write_record(runs, make_record("se_resnet110", seed, None, status="running", logged=logged))
        _ckpt(runs / "full" / "checkpoints" / f"se_resnet110_seed{seed}.pt", 14 * MiB)
    items, _ = collect(runs, "book/runs")
    ckpts = [it for it in items if it.kind == "checkpoint"]
    assert [it.epochs_done for it in ckpts] == [250, 120, 90, 40, 7, 3]
    assert [it.kind for it in items][:6] == ["record"] * 6  # records before every checkpoint
    bins, left = plan_archives(items)
    packed = [it for b in bins for it in b]
    assert sum(it.size + 1024 for it in packed) + 64 * 1024 * len(bins) <= MAX_TOTAL
    assert [it.epochs_done for it in packed if it.kind == "checkpoint"] == [250, 120, 90, 40]  # 4 × 14 MiB fit
    assert [it.epochs_done for it in left] == [7, 3] and len(bins) <= 8


def test_pack_counts_records_apart_from_the_sweep_plan(tmp_path):
    """`packed N record(s)` counts the runs' records; the sweep plan travels too (progress reads it) but is no run."""
    from se_res2net.training.transfer import collect

    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_record(runs, make_record("res2net29", seed, 5.0))
    (runs / "full" / ".sweep-plan.json").write_text('{"models": ["res2net29"]}')
    items, _ = collect(runs, "book/runs")
    assert len({it.member for it in items}) == len(items)  # each file once (pathlib's * matches dotfiles too)
    kinds = {it.member.rsplit("/", 1)[-1]: it.kind for it in items}
    assert kinds[".sweep-plan.json"] == "plan"
    assert sorted(name for name, kind in kinds.items() if kind == "record") == ["res2net29_seed0.json",
                                                                               "res2net29_seed1.json"]


def test_pack_lists_weights_of_runs_not_complete_yet_and_packs_everything_else(tmp_path, capsys):
    """The block's last call names the seed-0 runs whose final weights it wants; at that moment some are unfinished
    or not started. Those are listed, not packed (an unfinished run's checkpoint travels to resume), and the pack
    goes on: one such name must not cost every record of the block."""
    import argparse
    import tarfile

    import torch

    from se_res2net.training.checkpoint import save_checkpoint
    from se_res2net.training.transfer import add_pack_arguments, pack_results, run_pack

    runs = tmp_path / "runs"
    write_record(runs, make_record("res2net29", 0, 5.0))  # complete: its final weights are packed
    save_checkpoint(runs / "full" / "checkpoints" / "res2net29_seed0.pt",
                    {"model": "res2net29", "model_kwargs": {}, "state_dict": {"w": torch.ones(2)}, "epoch": 300,
                     "optimizer": {"momentum": torch.zeros(2)}})
    write_record(runs, make_record("se_res2net29", 0, None, status="running", logged=3))  # unfinished
    _ckpt(runs / "full" / "checkpoints" / "se_res2net29_seed0.pt", 1000)
    # complete and not named: its final model comes back all the same (its checkpoint stays behind)
    write_record(runs, make_record("res2net29", 1, 5.5))
    save_checkpoint(runs / "full" / "checkpoints" / "res2net29_seed1.pt",
                    {"model": "res2net29", "model_kwargs": {}, "state_dict": {"w": torch.zeros(2)}, "epoch": 300})
    wanted = ["res2net29_seed0", "se_res2net29_seed0", "se_resnet110_seed0"]  # the last: not started

    s = pack_results(tmp_path / "out", runs, prefix="book/runs", weights=wanted)
    members = {}
    for a in s["archives"]:
        with tarfile.open(a["archive"]) as tar:
            members.update({m.name: tar.extractfile(m).read() for m in tar.getmembers()})
    assert sorted(m for m in members if "/weights/" in m) == ["book/runs/full/weights/res2net29_seed0.pt",
                                                            "book/runs/full/weights/res2net29_seed1.pt"]
    assert "book/runs/full/checkpoints/res2net29_seed1.pt" not in members
    slim = torch.load(io.BytesIO(members["book/runs/full/weights/res2net29_seed0.pt"]), weights_only=True)
    assert "optimizer" not in slim and torch.equal(slim["state_dict"]["w"], torch.ones(2))
    assert "book/runs/full/checkpoints/se_res2net29_seed0.pt" in members  # it resumes elsewhere
    assert {"book/runs/full/res2net29_seed0.json", "book/runs/full/se_res2net29_seed0.json"} <= set(members)
    assert sorted(s["weights_pending"]) == ["se_res2net29_seed0", "se_resnet110_seed0"]
    assert "not complete (3 epoch(s) logged)" in s["weights_pending"]["se_res2net29_seed0"]
    assert "no checkpoint of se_resnet110_seed0" in s["weights_pending"]["se_resnet110_seed0"]

    p = argparse.ArgumentParser()
    add_pack_arguments(p)
    rc = run_pack(p.parse_args([str(tmp_path / "out2"), "--runs-root", str(runs), "--weights", *wanted]))
    out = capsys.readouterr().out
    assert rc == 0 and out.count("WEIGHTS NOT PACKED") == 2 and "se_resnet110_seed0" in out


def test_pack_leaves_out_the_temporary_file_of_a_write_in_progress(tmp_path):
    """The parity check may still be writing its JSON when the block's last call packs results/: the temporary
    file is renamed away between the listing and the read, so it must not be listed (nor is it a result)."""
    from se_res2net.training.atomic import atomic_path
    from se_res2net.training.transfer import collect

    runs, results = tmp_path / "runs", tmp_path / "results"
    write_record(runs, make_record("res2net29", 0, 5.0))
    (results / "bench-se_res2net29.json").parent.mkdir(parents=True)
    (results / "bench-se_res2net29.json").write_text("{}")
    with atomic_path(results / "parity-cuda.json") as tmp:
        tmp.write_text('{"half": ')
        items, _ = collect(runs, "book/runs", extras=[results])
    assert sorted(it.member for it in items if it.kind == "extra") == ["extra/results/bench-se_res2net29.json"]


def test_a_blocks_results_are_filed_once_and_its_gpu_parity_check_is_shown(tmp_path):
    """After unpack: results/ and logs/ (under extra/) go to benchmarks/gpu/block-<decided_at>/; a result identical
    to one filed by an earlier block (taken by this block, not measured) is not filed again; a parity check is
    copied to book/parity/ once; a second pack of a block adds to it, and a result that differs is refused."""
    import json

    from se_res2net.training.transfer import file_block_results

    def block(dest, decided_at, files):
        for rel, text in files.items():
            (dest / "extra" / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / "extra" / rel).write_text(text)
        (dest / "extra" / "results").mkdir(parents=True, exist_ok=True)
        (dest / "extra" / "results" / "decision.json").write_text(json.dumps({"decided_at": decided_at, "jobs": 2}))

    bench = json.dumps({"rows": [], "warmup_steps": 10, "device_name": "NVIDIA H100 80GB HBM3"})
    parity = json.dumps({"reference": "eager_fp32", "runs": {}, "device": "cuda"})
    dest = tmp_path / "checkout"
    block(dest, "2026-12-01T10:00:00Z", {"results/bench-se_res2net29.json": bench, "results/parity-cuda.json": parity,
                                         "logs/sweep.log": "epoch 1\n"})
    first = file_block_results(dest)
    filed = dest / "benchmarks" / "gpu" / "block-20261201T100000Z"
    assert first["block"] == str(filed) and not (dest / "extra").exists()
    assert (filed / "results" / "bench-se_res2net29.json").read_text() == bench
    assert (filed / "logs" / "sweep.log").read_text() == "epoch 1\n"
    (shown,) = first["parity"]
    assert Path(shown) == dest / "book" / "parity" / "parity-cuda-block-20261201T100000Z.json"
    assert Path(shown).read_text() == parity

    # the next block took the bench and the parity check from the first: neither is filed or shown twice
    block(dest, "2026-12-02T11:30:05Z", {"results/bench-se_res2net29.json": bench, "results/parity-cuda.json": parity,
                                         "logs/sweep.log": "epoch 2\n"})
    second = file_block_results(dest)
    again = dest / "benchmarks" / "gpu" / "block-20261202T113005Z"
    assert sorted(Path(p).relative_to(again).as_posix() for p in second["filed"]) == ["logs/sweep.log",
                                                                                     "results/decision.json"]
    assert {Path(old).name for _, old in second["duplicates"]} == {"bench-se_res2net29.json", "parity-cuda.json"}
    assert second["parity"] == [] and len(list((dest / "book" / "parity").iterdir())) == 1

    # a later pack of the same block: a new file is added, a log that grew is extended; a result that differs is
    # refused, and then nothing moves
    block(dest, "2026-12-02T11:30:05Z", {"logs/sweep.log": "epoch 2\nepoch 3\n", "logs/parity.log": "ok\n"})
    later = file_block_results(dest)
    assert later["block"] == str(again) and (again / "logs" / "sweep.log").read_text() == "epoch 2\nepoch 3\n"
    assert (again / "logs" / "parity.log").read_text() == "ok\n"
    assert [Path(old).name for _, old in later["duplicates"]] == ["decision.json"]  # the same decision, not refiled
    block(dest, "2026-12-02T11:30:05Z", {"logs/sweep.log": "another history\n"})
    with pytest.raises(FileExistsError, match="already holds other versions of .*sweep.log"):
        file_block_results(dest)
    assert (dest / "extra" / "logs" / "sweep.log").read_text() == "another history\n"
    assert (again / "logs" / "sweep.log").read_text() == "epoch 2\nepoch 3\n"
    assert file_block_results(tmp_path / "nothing_unpacked")["block"] is None


def test_a_folder_too_big_for_the_room_beside_the_tree_travels_as_bundles_that_merge_back(tmp_path):
    """After the first GPU block the committed checkpoints made the tree 47 MiB, and the 18 MiB of wheels fitted
    beside it in no call: `prepare` now hard-links them into bundles, each a folder named wheels/ that `stash`
    takes, and together they hold every file once."""
    from se_res2net.training.transfer import bundle_folder, carried_folder, working_tree_bytes

    root = Path(__file__).resolve().parents[1]
    room = CALL_LIMIT - (1 << 20) - working_tree_bytes(root)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    sizes = [int(room * 0.45), int(room * 0.4), int(room * 0.3), 100]  # 1.15 x the room: one folder cannot go
    for k, n in enumerate(sizes):
        (wheels / f"w{k}.whl").write_bytes(bytes([k]) * n)
    (wheels / "requirements.txt").write_text("w0\n")
    bundles = carried_folder(root, wheels, tmp_path / "bundles")
    assert len(bundles) >= 2 and all(b.name == "wheels" for b in bundles)
    assert all(sum(f.stat().st_size for f in b.iterdir()) <= room for b in bundles)
    merged = {f.name: f.read_bytes() for b in bundles for f in b.iterdir()}
    assert merged == {f.name: f.read_bytes() for f in wheels.iterdir()}
    assert sum(len(list(b.iterdir())) for b in bundles) == len(merged)  # each file once
    assert carry_plan_text(root, bundles).count("stash ") >= 2  # the bundles plan into calls
    # a folder that fits goes whole, and stale bundles of an earlier prepare are gone
    (wheels / "w0.whl").unlink()
    (wheels / "w1.whl").unlink()
    assert carried_folder(root, wheels, tmp_path / "bundles") == [wheels] and not (tmp_path / "bundles").exists()
    with pytest.raises(ValueError, match="alone is over"):
        bundle_folder(wheels, tmp_path / "b2", 50)


CPU_MACHINE = {"device": "cpu", "device_name": "x86_64 CPU", "cuda": None, "torch": "2.11.0+cu130"}


def _cache_dir(root: Path) -> Path:
    """A stand-in TORCHINDUCTOR_CACHE_DIR: entries, a lock and a write in progress."""
    for rel, data in {"fxgraph/ab/entry": b"graph" * 100, "aotautograd/cd/entry": b"aot", "xy/kernel.py": b"k" * 50,
                      "locks/fxgraph.lock": b"", "fxgraph/ab/.entry.123.tmp": b"half"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_the_compile_cache_travels_last_and_optional_and_seeds_only_the_machine_that_compiled_it(tmp_path, capsys,
                                                                                                 caplog):
    """`pack --compile-cache` adds torch.compile's cache after everything else, left out without failing when it
    does not fit; unpack puts it under .xfer/ (ignored by git); it seeds a cache folder only on the machine that
    compiled it (its own record of that machine), only an absent or empty one, and whole (no lock, no temporary)."""
    from se_res2net.cli import main
    from se_res2net.training.transfer import COMPILE_CACHE_MEMBER, collect, plan_archives, seed_compile_cache

    runs = tmp_path / "runs"
    write_record(runs, make_record("res2net29", 0, None, status="running", logged=3))
    _ckpt(runs / "full" / "checkpoints" / "res2net29_seed0.pt", 100)
    cache = _cache_dir(tmp_path / "inductor")
    items, _ = collect(runs, "book/runs", compile_cache=(cache, CPU_MACHINE))
    assert [it.kind for it in items] == ["record", "checkpoint", "cache"] and items[-1].member == COMPILE_CACHE_MEMBER
    # too big for what is left: left out, and the pack still succeeds
    bins, left = plan_archives(items, max_files=1, max_bytes=items[0].size + items[1].size + 64 * 1024 + 2100)
    assert [it.kind for it in left] == ["cache"]
    machine_file = tmp_path / "machine.json"
    machine_file.write_text(__import__("json").dumps(CPU_MACHINE))
    argv = ["pack", str(tmp_path / "out"), "--runs-root", str(runs), "--compile-cache", str(cache),
            "--compile-cache-machine", str(machine_file)]
    small = str(items[0].size + items[1].size + 64 * 1024 + 2100)
    assert main([*argv, "--max-files", "1", "--max-bytes", small]) == 0
    assert "(cache, 0.00 MiB) (optional: the next block compiles again)" in capsys.readouterr().out
    assert main([*argv[:1], str(tmp_path / "out2"), *argv[2:]]) == 0
    dest = tmp_path / "checkout"
    assert main(["unpack", str(tmp_path / "out2"), "--dest", str(dest)]) == 0
    carried = dest / COMPILE_CACHE_MEMBER
    assert carried.is_file() and COMPILE_CACHE_MEMBER.startswith(".xfer/")

    here = tmp_path / "seeded"
    other = {**CPU_MACHINE, "torch": "2.12.0"}
    assert "compiled on another machine (" in seed_compile_cache(carried, here, other) and not here.exists()
    said = seed_compile_cache(carried, here, CPU_MACHINE)
    assert said == f"compile cache {here} seeded with 3 file(s) compiled on this machine before"
    assert sorted(p.relative_to(here).as_posix() for p in here.rglob("*") if p.is_file()) == [
        "aotautograd/cd/entry", "fxgraph/ab/entry", "xy/kernel.py"]
    assert (here / "fxgraph/ab/entry").read_bytes() == b"graph" * 100
    (here / "xy/kernel.py").write_bytes(b"newer")
    assert "exists already: kept" in seed_compile_cache(carried, here, CPU_MACHINE)
    assert (here / "xy/kernel.py").read_bytes() == b"newer"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "seeded with 3 file(s)" in seed_compile_cache(carried, empty, CPU_MACHINE)
    not_a_cache = tmp_path / "other.tar.gz"
    import tarfile

    with tarfile.open(not_a_cache, "w:gz") as tar:
        tar.add(machine_file, arcname="something.json")
    assert "is no compile cache" in seed_compile_cache(not_a_cache, tmp_path / "x", CPU_MACHINE)
    cut_short = tmp_path / "cut.tar.gz"  # a carried copy that lost its end
    cut_short.write_bytes(carried.read_bytes()[: carried.stat().st_size // 2])
    said = seed_compile_cache(cut_short, tmp_path / "y", CPU_MACHINE)
    assert "could not be read" in said and "not used" in said
    assert not (tmp_path / "y").exists() and not (tmp_path / "y.partial").exists()
    # optional to the end: a cache that cannot be packed is left out, said, and costs none of the results
    with caplog.at_level("WARNING", logger="se_res2net.training.transfer"):
        items, _ = collect(runs, "book/runs", compile_cache=(tmp_path / "nope", CPU_MACHINE))
    assert "is not a folder" in caplog.text and items and all(it.kind != "cache" for it in items)
    items, _ = collect(runs, "book/runs", compile_cache=(cache, {"device": "cpu"}))  # its machine half-named
    assert items and all(it.kind != "cache" for it in items) and "lacks" in caplog.text


def test_unpack_never_takes_an_archives_run_that_is_behind_the_local_one(tmp_path, capsys):
    """A run trained on here after the block packed it (e.g. a CPU sweep of the checkout restarted meanwhile)
    keeps its local record and checkpoint; the archive's other runs come in; that is no conflict (exit 0)."""
    from se_res2net.cli import main

    device = tmp_path / "device" / "book" / "runs"
    for seed, logged in ((0, 4), (1, 9)):
        write_record(device, make_record("res2net29", seed, None, profile="budget", status="running", logged=logged))
        _ckpt(device / "budget" / "checkpoints" / f"res2net29_seed{seed}.pt", 100 + seed)
    (device / "budget" / ".sweep-plan.json").write_text('{"models": ["res2net29"], "pid": 2}')
    assert main(["pack", str(tmp_path / "out"), "--runs-root", str(device), "--prefix", "book/runs"]) == 0

    here = tmp_path / "here"
    local = write_record(here / "book" / "runs", make_record("res2net29", 0, None, profile="budget", status="running",
                                                             logged=6))  # two epochs further than the archive's
    local_ckpt = _ckpt(here / "book" / "runs" / "budget" / "checkpoints" / "res2net29_seed0.pt", 7)
    (here / "book" / "runs" / "budget" / ".sweep-plan.json").write_text('{"models": ["res2net29"], "pid": 1}')
    before = local.read_bytes()
    capsys.readouterr()

    assert main(["unpack", str(tmp_path / "out"), "--dest", str(here)]) == 0

    said = capsys.readouterr().out
    assert local.read_bytes() == before and local_ckpt.read_bytes() == b"\x01" * 7
    assert f"kept the local {local}" in said and f"kept the local {local_ckpt}" in said
    seed1 = here / "book" / "runs" / "budget" / "res2net29_seed1.json"
    assert len(json.loads(seed1.read_text())["epochs"]) == 9
    assert (here / "book" / "runs" / "budget" / "checkpoints" / "res2net29_seed1.pt").read_bytes() == b"\x01" * 101
    assert '"pid": 2' in (here / "book" / "runs" / "budget" / ".sweep-plan.json").read_text()  # no run's: taken


def test_finalize_compares_weights_bit_for_bit_so_nan_weights_are_the_same_weights(tmp_path):
    # A diverged run's weights hold NaN; torch.equal calls NaN unequal to itself, which made finalize refuse the
    # weights it had just written, and call a second pass "other weights".
    import torch

    from se_res2net.training.checkpoint import save_checkpoint
    from se_res2net.training.transfer import finalize_runs

    runs = tmp_path / "runs"
    ck = runs / "budget" / "checkpoints" / "res2net29_seed0.pt"
    write_record(runs, make_record("res2net29", 0, 90.0, profile="budget"))
    state = {"w": torch.tensor([float("nan"), -0.0, 1.0])}
    save_checkpoint(ck, {"model": "res2net29", "model_kwargs": {}, "state_dict": state, "epoch": 30})
    weights = runs / "budget" / "weights" / "res2net29_seed0.pt"
    assert finalize_runs(runs, keep_checkpoints=True)["written"] == [str(weights)]
    assert finalize_runs(runs, keep_checkpoints=True)["unchanged"] == [str(weights)]
    # -0.0 is not 0.0 bit for bit: other weights, kept unless --force
    save_checkpoint(ck, {"model": "res2net29", "model_kwargs": {}, "state_dict": {"w": torch.tensor([float("nan"), 0.0, 1.0])},
                         "epoch": 30})
    with pytest.raises(FileExistsError, match="--force"):
        finalize_runs(runs, keep_checkpoints=True)


def test_unpack_checks_the_whole_set_of_archives_before_it_writes_anything(tmp_path):
    """A set that lacks an archive, holds a corrupt member or a cut archive extracts nothing: extracting the first
    archives of a broken set would leave records of epoch N beside checkpoints of an earlier epoch."""
    import shutil
    import tarfile

    from se_res2net.training.transfer import _OVERHEAD, pack_results, unpack_results

    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_record(runs, make_record("res2net29", seed, None, status="running", logged=3))
        _ckpt(runs / "full" / "checkpoints" / f"res2net29_seed{seed}.pt", 300_000)
    # room for one checkpoint per archive: two archives
    s = pack_results(tmp_path / "out", runs, prefix="book/runs", max_bytes=_OVERHEAD + 400_000)
    archives = sorted((tmp_path / "out").glob("results-*.tar.gz"))
    assert len(archives) == 2 and not s["left_out"]

    def fails(folder, match):
        dest = tmp_path / f"dest-{folder.name}"
        dest.mkdir()
        with pytest.raises(ValueError, match=match):
            unpack_results(folder, dest)
        assert list(dest.rglob("*")) == []  # nothing written

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy2(archives[0], one)
    fails(one, "one of 2 archives.*holds 1.*nothing was extracted")

    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "out", bad)
    with tarfile.open(archives[1]) as tar:  # the same manifest, one member's bytes changed
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(bad / archives[1].name, "w:gz") as tar:
        for m, data in members:
            data = data[:-1] + bytes([data[-1] ^ 1]) if m.name.endswith(".pt") else data
            tar.addfile(m, io.BytesIO(data))
    fails(bad, "does not match its manifest.*nothing was extracted")

    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "out", cut)
    (cut / archives[1].name).write_bytes(archives[1].read_bytes()[: archives[1].stat().st_size // 2])
    fails(cut, "cannot be read.*copy it again")

    dest = tmp_path / "dest-whole"
    assert len(unpack_results(tmp_path / "out", dest)["extracted"]) == 4  # the whole set: two records, two checkpoints


def test_pack_leaves_behind_a_carried_checkpoint_that_trained_nothing(tmp_path):
    """The block carried in every committed checkpoint, also of runs its sweep does not train (the CPU pair of
    this checkout): one still byte for byte as it came stays behind, so the archives' room goes to what trained
    (and git gets no new blob of the same epoch); one that trained on comes back."""
    import argparse
    import shutil
    import tarfile

    from se_res2net.training.transfer import add_pack_arguments, run_pack

    runs, stage = tmp_path / "runs", tmp_path / "stage" / "resume"
    for seed in (0, 1):
        write_record(runs, make_record("res2net29", seed, None, profile="budget", status="running", logged=3))
        _ckpt(runs / "budget" / "checkpoints" / f"res2net29_seed{seed}.pt", 1000 + seed)
    shutil.copytree(runs / "budget" / "checkpoints", stage / "budget" / "checkpoints")
    (runs / "budget" / "checkpoints" / "res2net29_seed1.pt").write_bytes(b"\x02" * 1001)  # seed 1 trained on here
    p = argparse.ArgumentParser()
    add_pack_arguments(p)
    assert run_pack(p.parse_args([str(tmp_path / "out"), "--runs-root", str(runs), "--prefix", "book/runs",
                                  "--skip-unchanged", str(tmp_path / "stage" / "resume")])) == 0
    members = set()
    for a in (tmp_path / "out").glob("results-*.tar.gz"):
        with tarfile.open(a) as tar:
            members |= set(tar.getnames())
    assert "book/runs/budget/checkpoints/res2net29_seed1.pt" in members
    assert "book/runs/budget/checkpoints/res2net29_seed0.pt" not in members
    assert {"book/runs/budget/res2net29_seed0.json", "book/runs/budget/res2net29_seed1.json"} <= members
