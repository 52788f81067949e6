"""A record's profile comes from its own config, provenance and log, never from its folder or its label."""

from __future__ import annotations

import copy

import pytest

from fakes import make_record, write_record
from se_res2net.audit.conformance import CUSTOM, conformance_table, deviations, satisfied_profile
from se_res2net.audit.results import load_records


@pytest.mark.parametrize("profile", ["full", "budget", "smoke"])
def test_a_faithful_record_satisfies_its_profile(profile):
    rec = make_record("se_res2net29", 0, 3.1, profile=profile)
    assert deviations(rec, profile) == []
    assert satisfied_profile(rec) == profile


def test_smoke_on_the_embedded_sample_is_smoke_but_never_full():
    rec = make_record("se_res2net29", 0, 80.0, profile="smoke", sample=True)
    assert satisfied_profile(rec) == "smoke"
    assert any("embedded sample" in d or "subset" in d for d in deviations(rec, "full"))


def _set(path, value):
    def mutate(rec):
        *head, last = path
        d = rec
        for k in head:
            d = d[k]
        if value is _DEL:
            del d[last]
        else:
            d[last] = value
    return mutate


_DEL = object()

# (what is changed, the change, a word the deviation must contain)
MUTATIONS = [
    ("epochs", _set(("config", "epochs"), 30), "epochs"),
    ("batch", _set(("config", "batch_size"), 256), "batch size"),
    ("lr", _set(("config", "lr"), 0.2), "learning rate"),
    ("momentum", _set(("config", "momentum"), 0.0), "momentum"),
    ("nesterov", _set(("config", "nesterov"), True), "Nesterov"),
    ("wd", _set(("config", "weight_decay"), 5e-4), "weight decay"),
    ("gamma", _set(("config", "gamma"), 0.2), "decay factor"),
    ("milestones", _set(("config", "milestones"), [100, 150]), "milestones"),
    ("augment", _set(("config", "augment"), "none"), "augmentation"),
    ("augment missing", _set(("config", "augment"), _DEL), "augmentation not recorded"),
    ("train subset", _set(("config", "train_subset"), 5000), "train subset"),
    ("model overrides", _set(("config", "model_kwargs"), {"scale": 8}), "overrides"),
    ("sample data", _set(("provenance", "data_is_sample"), True), "embedded sample"),
    ("fewer images", _set(("provenance", "train_size"), 45_000), "45000 train"),
    ("other data", _set(("provenance", "data_fingerprint"), "ab" * 32), "fingerprint"),
    ("no fingerprint", _set(("provenance", "data_fingerprint"), _DEL), "fingerprint"),
    ("lr log off schedule", lambda r: r["epochs"][200].update(lr=0.1), "off schedule"),
    ("short log", lambda r: r.update(epochs=r["epochs"][:10]), "logs 10 of"),
    ("result not last epoch", lambda r: r.update(final_test_error=2.0), "last logged epoch"),
]


@pytest.mark.parametrize("what,mutate,word", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_record_that_departs_from_the_protocol_is_not_full(what, mutate, word):
    rec = make_record("se_res2net29", 0, 3.1, profile="full")
    mutate(rec)
    found = deviations(rec, "full")
    assert any(word in d for d in found), found
    assert satisfied_profile(rec) != "full"


def test_an_unfinished_full_run_is_full_by_its_setup_but_not_complete():
    rec = make_record("se_res2net29", 0, None, profile="full", status="running", logged=40)
    assert satisfied_profile(rec) == "full"  # the setup is the protocol's; the status says it is unfinished


def test_folder_and_label_do_not_decide_the_profile(tmp_path):
    root = tmp_path / "runs"
    # claims full and sits in full/, but trained the budget recipe
    liar = make_record("se_res2net29", 0, 3.0, profile="budget")
    liar["profile"] = liar["config"]["profile"] = "full"
    write_record(root, liar, folder="full")
    # a real full run that sits in the smoke folder and labels itself custom
    honest = make_record("res2net29", 0, 3.4, profile="full")
    honest["profile"] = honest["config"]["profile"] = "custom"
    write_record(root, honest, folder="smoke")
    df = load_records(root).set_index("model")
    assert df.at["se_res2net29", "profile"] == "budget" and df.at["se_res2net29", "named_profile"] == "full"
    assert "epochs 30, the profile's is 300" in df.at["se_res2net29", "deviations"]
    assert df.at["res2net29", "profile"] == "full" and df.at["res2net29", "folder"] == "smoke"
    assert list(load_records(root, profile="full").model) == ["res2net29"]


def test_conformance_table_shows_who_claims_what():
    liar = make_record("se_res2net29", 1, 3.0, profile="budget")
    liar["profile"] = "full"
    ok = make_record("res2net29", 1, 3.4, profile="full")
    odd = copy.deepcopy(ok)
    odd["config"]["weight_decay"] = 5e-4
    odd["seed"] = 2
    t = conformance_table([liar, ok, odd]).set_index("run")
    assert t.at["se_res2net29 seed 1", "satisfies"] == "budget" and not t.at["se_res2net29 seed 1", "agrees"]
    assert "epochs" in t.at["se_res2net29 seed 1", "why not"]
    assert t.at["res2net29 seed 1", "agrees"] and t.at["res2net29 seed 1", "why not"] == ""
    assert t.at["res2net29 seed 2", "satisfies"] == CUSTOM and "weight decay" in t.at["res2net29 seed 2", "why not"]


def test_git_dirty_means_code_not_run_outputs(tmp_path, monkeypatch):
    """Re-running a committed profile rewrites its records; that is not a dirty checkout, an edited module is."""
    import subprocess

    from se_res2net.training import records

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "se_res2net").mkdir()
    (tmp_path / "se_res2net" / "m.py").write_text("x = 1\n")
    (tmp_path / "book" / "runs" / "smoke").mkdir(parents=True)
    (tmp_path / "book" / "runs" / "smoke" / "a_seed0.json").write_text("{}")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    monkeypatch.setattr(records, "_PACKAGE_DIR", tmp_path / "se_res2net")
    assert records.git_state()["git_dirty"] is False
    (tmp_path / "book" / "runs" / "smoke" / "a_seed0.json").write_text('{"rerun": true}')
    assert records.git_state()["git_dirty"] is False
    (tmp_path / "se_res2net" / "m.py").write_text("x = 2\n")
    assert records.git_state()["git_dirty"] is True


def test_git_state_of_a_copy_without_git_comes_from_a_checked_manifest(tmp_path, monkeypatch):
    """The GPU machine gets the working tree without .git: the manifest names the commit, and a changed code
    file there makes the record dirty (a changed run output does not)."""
    import shutil
    import subprocess

    from se_res2net.training import records

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path / "repo", check=True, capture_output=True)

    repo = tmp_path / "repo"
    (repo / "se_res2net").mkdir(parents=True)
    (repo / "se_res2net" / "m.py").write_text("x = 1\n")
    (repo / "book" / "runs" / "full").mkdir(parents=True)
    (repo / "book" / "runs" / "full" / "a_seed0.json").write_text("{}")
    (repo / "book" / "_config.yml").symlink_to("../se_res2net/m.py")  # git stores a link's target
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr(records, "_PACKAGE_DIR", repo / "se_res2net")
    manifest = tmp_path / "manifest.json"
    assert records.write_source_manifest(manifest)["commit"] == commit

    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    monkeypatch.setattr(records, "_PACKAGE_DIR", copy / "se_res2net")
    monkeypatch.delenv(records.SOURCE_MANIFEST_ENV, raising=False)
    assert records.git_state() == {"git_commit": None, "git_dirty": None}
    monkeypatch.setenv(records.SOURCE_MANIFEST_ENV, str(manifest))
    assert records.git_state() == {"git_commit": commit, "git_dirty": False, "git_source": "manifest"}
    (copy / "book" / "runs" / "full" / "a_seed0.json").write_text('{"rerun": true}')
    assert records.git_state()["git_dirty"] is False
    (copy / "se_res2net" / "m.py").write_text("x = 2\n")
    assert records.git_state() == {"git_commit": commit, "git_dirty": True, "git_source": "manifest"}
    (copy / "se_res2net" / "m.py").unlink()
    assert records.git_state()["git_dirty"] is True


def test_the_manifest_names_a_copy_whose_git_is_of_an_older_commit(tmp_path, monkeypatch):
    """The first GPU block's copy of the tree held the .git of the last landed commit and the files of a later
    one: git alone called that the landed commit, dirty. The runbook's manifest names the commit whose files
    these are, so it wins over the .git it finds."""
    import subprocess

    from se_res2net.training import records

    repo = tmp_path / "repo"

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    (repo / "se_res2net").mkdir(parents=True)
    (repo / "se_res2net" / "m.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "landed")
    landed = git("rev-parse", "HEAD")
    (repo / "se_res2net" / "m.py").write_text("x = 2\n")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "later")
    later = git("rev-parse", "HEAD")
    monkeypatch.setattr(records, "_PACKAGE_DIR", repo / "se_res2net")
    monkeypatch.delenv(records.SOURCE_MANIFEST_ENV, raising=False)
    manifest = tmp_path / "manifest.json"
    assert records.write_source_manifest(manifest)["commit"] == later
    # the device's copy: the landed commit's .git, the later commit's files
    git("reset", "-q", "--soft", landed)
    assert records.git_state() == {"git_commit": landed, "git_dirty": True}
    monkeypatch.setenv(records.SOURCE_MANIFEST_ENV, str(manifest))
    assert records.git_state() == {"git_commit": later, "git_dirty": False, "git_source": "manifest"}
