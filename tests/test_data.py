"""Tests of se_res2net.training.data: sources, canonical order, fingerprints, errors, cache, subset, augmentation."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from se_res2net.training import data as d

REPO = Path(__file__).resolve().parents[1]
FULL_DIR = Path(os.environ.get(d.DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared/data/cifar10")
needs_full = pytest.mark.needs_shared(FULL_DIR / "train", FULL_DIR / "test")  # tests/conftest.py skips and says so


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def sample() -> d.Cifar10:
    return d.load_cifar10(source="sample")


@pytest.fixture(scope="session")
def full_cache_dir(tmp_path_factory) -> Path:
    env = os.environ.get(d.CACHE_ENV)
    return Path(env) if env else tmp_path_factory.mktemp("cifar_cache")


@pytest.fixture(scope="session")
def full_loads(full_cache_dir):
    """(first load, its seconds, second load, its seconds) of the full folder; decoded at most once per session."""
    t0 = time.perf_counter()
    first = d.load_cifar10(data_dir=FULL_DIR, cache_dir=full_cache_dir, progress=False)
    t1 = time.perf_counter()
    second = d.load_cifar10(data_dir=FULL_DIR, cache_dir=full_cache_dir, progress=False)
    t2 = time.perf_counter()
    return first, t1 - t0, second, t2 - t1


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    dst = tmp_path / "cifar10"
    shutil.copytree(d.SAMPLE_DIR, dst)
    return dst


def _load_like_sample(root: Path) -> d.Cifar10:
    """The folder loader, checked against the sample's counts and fingerprints."""
    train, test = d._decode_folder(root, d._SAMPLE, progress=False)
    return d._make(train, test, "folder", d._SAMPLE, root)


# ------------------------------------------------------------------------------------------------ constants


def test_constants():
    assert d.CIFAR10_CLASSES == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )
    assert d.CIFAR10_MEAN == (0.49139968, 0.48215841, 0.44653091)
    assert d.CIFAR10_STD == (0.24703223, 0.24348513, 0.26158784)
    for h in (d.CIFAR10_TRAIN_SHA256, d.CIFAR10_TEST_SHA256, d.SAMPLE_TRAIN_SHA256, d.SAMPLE_TEST_SHA256):
        assert len(h) == 64 and int(h, 16) >= 0


def test_import_is_light():
    code = "import sys, se_res2net.training.data; print(sorted(m for m in ('torch', 'torchvision', 'PIL', 'tqdm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ sample


def test_sample_loads_and_is_labelled(sample):
    assert sample.source == "sample" and sample.is_sample is True
    assert Path(sample.root) == d.SAMPLE_DIR
    assert len(sample.train) == 10 * d.SAMPLE_TRAIN_PER_CLASS == 300
    assert len(sample.test) == 10 * d.SAMPLE_TEST_PER_CLASS == 100
    for split in (sample.train, sample.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == np.int64 and split.labels.shape == (len(split),)
        assert split.images.flags.c_contiguous
    assert sample.train.sha256 == d.SAMPLE_TRAIN_SHA256
    assert sample.test.sha256 == d.SAMPLE_TEST_SHA256
    assert sample.fingerprint == d.combine_fingerprints(d.SAMPLE_TRAIN_SHA256, d.SAMPLE_TEST_SHA256)
    assert sample.summary()["data_is_sample"] is True


def test_sample_is_small_and_documented():
    files = [p for p in d.SAMPLE_DIR.parent.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    assert (d.SAMPLE_DIR.parent / "README.txt").is_file()


def _assert_canonical(split: d.CifarSplit):
    labels = split.labels
    assert np.all(np.diff(labels) >= 0), "not sorted by label"
    flat = split.images.reshape(len(split), -1)
    for i in range(len(split) - 1):
        if labels[i] == labels[i + 1]:
            assert flat[i].tobytes() < flat[i + 1].tobytes(), f"images {i}, {i + 1} identical or out of byte order"


def test_canonical_order_label_then_bytes(sample):
    _assert_canonical(sample.train)
    _assert_canonical(sample.test)


def test_to_canonical_is_order_independent_and_converts_torchvision_layout(sample):
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(sample.train))
    nhwc = sample.train.images[perm].transpose(0, 2, 3, 1).copy()  # torchvision's (N, 32, 32, 3)
    targets = sample.train.labels[perm].tolist()
    split = d.from_torchvision_arrays(nhwc, targets)
    np.testing.assert_array_equal(split.images, sample.train.images)
    np.testing.assert_array_equal(split.labels, sample.train.labels)
    assert split.sha256 == d.SAMPLE_TRAIN_SHA256
    with pytest.raises(ValueError, match="32, 32, 3"):
        d.from_torchvision_arrays(sample.train.images, targets)  # NCHW given where NHWC expected


def test_canonical_order_handles_ties_and_byte_order():
    imgs = np.zeros((4, 3, 32, 32), np.uint8)
    imgs[0, 0, 0, 0] = 200  # label 1, bigger first byte
    imgs[1, 0, 0, 1] = 255  # label 1, smaller first byte -> first
    imgs[3, 2, 31, 31] = 1  # label 0
    split = d.to_canonical(imgs, [1, 1, 0, 0])
    assert split.labels.tolist() == [0, 0, 1, 1]
    assert split.images[0].sum() == 0 and split.images[1, 2, 31, 31] == 1
    assert split.images[2, 0, 0, 1] == 255 and split.images[3, 0, 0, 0] == 200


def test_cifar_split_validates():
    with pytest.raises(ValueError, match="uint8"):
        d.CifarSplit(np.zeros((2, 3, 32, 32), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="int64"):
        d.CifarSplit(np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2, np.int32))


def test_channel_stats_exact(sample):
    mean, std = d.channel_stats(sample.train.images)
    x = sample.train.images.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=0, atol=1e-12)  # population (ddof=0)


# ------------------------------------------------------------------------------------------------ torchvision source


def _write_torchvision_format(split_train: d.CifarSplit, split_test: d.CifarSplit, root: Path) -> None:
    """The python-pickle batch layout torchvision reads (data rows are CHW bytes), shuffled."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)

    def rows(split):
        perm = rng.permutation(len(split))
        return split.images[perm].reshape(len(split), -1), split.labels[perm].tolist()

    data, labels = rows(split_train)
    for k, chunk in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        with open(base / f"data_batch_{k}", "wb") as f:
            pickle.dump({"data": data[chunk], "labels": [labels[i] for i in chunk]}, f)
    data, labels = rows(split_test)
    with open(base / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": labels}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(d.CIFAR10_CLASSES)}, f)


def test_torchvision_source_gives_the_same_arrays(sample, tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # our fake batches have other md5s
    root = tmp_path / "tv"
    _write_torchvision_format(sample.train, sample.test, root)
    train, test = d._load_torchvision(root, d._SAMPLE)
    np.testing.assert_array_equal(train.images, sample.train.images)
    np.testing.assert_array_equal(test.labels, sample.test.labels)
    assert test.sha256 == d.SAMPLE_TEST_SHA256
    # Through the public API the full-data expectations apply: a clear error, nothing cached.
    with pytest.raises(ValueError, match=r"torchvision CIFAR-10 under .*tv.*--download"):
        d.load_cifar10("torchvision", root, cache_dir=tmp_path / "cache")
    assert not list(tmp_path.rglob("*.npz")), "a source that fails verification must not be cached"


def test_torchvision_missing_names_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="--download"):
        d.load_cifar10("torchvision", tmp_path / "nothing", cache=False)


# ------------------------------------------------------------------------------------------------ auto / errors


def test_auto_without_any_source_names_three_fixes(tmp_path, monkeypatch):
    monkeypatch.delenv(d.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(d, "DEFAULT_TORCHVISION_ROOT", tmp_path / "no_tv")
    with pytest.raises(ValueError) as exc:  # NoDataSourceError is a ValueError
        d.load_cifar10()
    msg = str(exc.value)
    # a Python caller is told load_cifar10's keywords; each CLI command re-spells them (test_missing_data_errors)
    assert "data_dir=DIR" in msg and "SE_RES2NET_DATA_DIR" in msg and "download=True" in msg
    assert 'source="sample"' in msg and "--" not in msg


def test_auto_uses_env_dir(tmp_path, monkeypatch):
    missing = tmp_path / "where_the_data_should_be"
    monkeypatch.setenv(d.DATA_DIR_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match="where_the_data_should_be"):
        d.load_cifar10(cache=False)


def test_bad_source_name():
    with pytest.raises(ValueError, match="source must be one of"):
        d.load_cifar10("imagenet")


def test_sample_copy_via_folder_loader_matches(sample, sample_copy):
    got = _load_like_sample(sample_copy)
    assert got.fingerprint == sample.fingerprint and got.is_sample


def test_sample_folder_loads_as_the_sample_never_as_cifar10(sample, sample_copy, tmp_path):
    # a folder copy of the embedded sample (the GPU runbook's rehearsal data) is recognised as the sample:
    # verified against the sample's fingerprint and labelled as such in everything that uses it
    got = d.load_cifar10(data_dir=sample_copy, cache_dir=tmp_path / "cache")
    assert got.is_sample and got.source == "folder" and got.fingerprint == sample.fingerprint
    # any other folder of that size is neither: one altered image fails the sample's fingerprint
    from PIL import Image

    victim = sorted((sample_copy / "train" / "dog").glob("*.png"))[0]
    with Image.open(victim) as im:
        pixels = im.convert("RGB")
    pixels.putpixel((0, 0), (0, 0, 0) if pixels.getpixel((0, 0)) != (0, 0, 0) else (255, 255, 255))
    pixels.save(victim)
    with pytest.raises(ValueError, match=r"fingerprint.*embedded CIFAR-10 sample"):
        d.load_cifar10(data_dir=sample_copy, cache=False)
    # and a folder with other counts is checked against the full set
    shutil.rmtree(sample_copy / "train" / "airplane")
    (sample_copy / "train" / "airplane").mkdir()
    with pytest.raises(ValueError, match=r"holds 0 PNG files, CIFAR-10 has 5000"):
        d.load_cifar10(data_dir=sample_copy, cache=False)


def test_folder_load_is_cached(sample, sample_copy, tmp_path, monkeypatch):
    first = d.load_cifar10(data_dir=sample_copy, cache_dir=tmp_path / "cache")
    assert [p.name.startswith("cifar10-folder-") for p in (tmp_path / "cache").glob("*.npz")] == [True]
    monkeypatch.setattr(d, "_decode_folder", lambda *a, **k: pytest.fail("decoded again: the cache was not used"))
    second = d.load_cifar10(data_dir=sample_copy, cache_dir=tmp_path / "cache")
    assert second.fingerprint == first.fingerprint and np.array_equal(second.train.images, sample.train.images)


def test_missing_class(sample_copy):
    shutil.rmtree(sample_copy / "test" / "frog")
    with pytest.raises(FileNotFoundError, match=r"test/frog") as exc:
        _load_like_sample(sample_copy)
    assert str(sample_copy) in str(exc.value) and "--data-dir" in str(exc.value)


def test_missing_file(sample_copy):
    next((sample_copy / "train" / "cat").glob("*.png")).unlink()
    with pytest.raises(ValueError, match=r"train/cat holds 29 PNG files"):
        _load_like_sample(sample_copy)


def test_truncated_png(sample_copy):
    victim = sorted((sample_copy / "train" / "ship").glob("*.png"))[3]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(ValueError, match="corrupt or truncated") as exc:
        _load_like_sample(sample_copy)
    assert victim.name in str(exc.value)


def test_wrong_size_image(sample_copy):
    from PIL import Image

    victim = sorted((sample_copy / "test" / "dog").glob("*.png"))[0]
    Image.new("RGB", (31, 32)).save(victim)
    with pytest.raises(ValueError, match="31x32 RGB image, CIFAR-10 images are 32x32") as exc:
        _load_like_sample(sample_copy)
    assert victim.name in str(exc.value)


def test_altered_pixel_fails_fingerprint(sample_copy):
    from PIL import Image

    victim = sorted((sample_copy / "train" / "horse").glob("*.png"))[5]
    with Image.open(victim) as im:
        arr = np.asarray(im.convert("RGB")).copy()
    arr[0, 0, 0] ^= 1
    Image.fromarray(arr).save(victim)
    with pytest.raises(ValueError, match="fingerprint .* some image was altered"):
        _load_like_sample(sample_copy)


# ------------------------------------------------------------------------------------------------ cache


def _cached(root: Path, cache_dir: Path, calls: list):
    listing = d._list_folder(root, d._SAMPLE)
    digest = d._listing_digest(listing, root)

    def decode():
        calls.append(1)
        return d._decode_folder(root, d._SAMPLE, False, listing)

    return d._load_cached("folder", root, d._SAMPLE, cache_dir, digest, decode)


def test_cache_round_trip_and_corruption(sample, sample_copy, tmp_path):
    cache_dir = tmp_path / "cache"
    calls: list = []
    train, test = _cached(sample_copy, cache_dir, calls)
    assert len(calls) == 1
    (path,) = cache_dir.glob("*.npz")
    assert path.name.startswith("cifar10-folder-") and not list(cache_dir.glob("*.tmp"))
    train2, test2 = _cached(sample_copy, cache_dir, calls)
    assert len(calls) == 1, "second load should come from the cache"
    np.testing.assert_array_equal(train2.images, sample.train.images)
    np.testing.assert_array_equal(test2.labels, sample.test.labels)

    # 1) bytes flipped on disk -> detected, warned, rebuilt
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt.*rebuilding"):
        train3, _ = _cached(sample_copy, cache_dir, calls)
    assert len(calls) == 2 and train3.sha256 == d.SAMPLE_TRAIN_SHA256

    # 2) a well-formed npz with altered pixels -> fingerprint mismatch -> rebuilt
    with np.load(path) as z:
        content = {k: z[k].copy() for k in z.files}
    content["train_images"][0, 0, 0, 0] ^= 1
    with open(path, "wb") as fh:
        np.savez(fh, **content)
    with pytest.warns(UserWarning, match="fingerprint mismatch"):
        _cached(sample_copy, cache_dir, calls)
    assert len(calls) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _cached(sample_copy, cache_dir, calls)  # the rebuilt cache is clean
    assert len(calls) == 3

    # 3) the source changed (a file touched) -> stale -> decoded again
    victim = next((sample_copy / "train" / "bird").glob("*.png"))
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _cached(sample_copy, cache_dir, calls)
    assert len(calls) == 4


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(d.CACHE_ENV, str(tmp_path / "env_cache"))
    assert d.cache_dir_path() == tmp_path / "env_cache"
    assert d.cache_dir_path(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(d.CACHE_ENV)
    assert d.cache_dir_path() == Path("~/.cache/se_res2net").expanduser()


# ------------------------------------------------------------------------------------------------ subset


def test_subset_stratified_deterministic(sample):
    a = sample.subset(train=100, test=30, seed=3)
    b = sample.subset(train=100, test=30, seed=3)
    c = sample.subset(train=100, test=30, seed=4)
    assert np.bincount(a.train.labels, minlength=10).tolist() == [10] * 10
    assert np.bincount(a.test.labels, minlength=10).tolist() == [3] * 10
    np.testing.assert_array_equal(a.train.images, b.train.images)
    assert not np.array_equal(a.train.images, c.train.images)
    assert a.fingerprint == f"{sample.fingerprint}:subset(train=100,test=30,seed=3)"
    assert a.is_sample and a.source == "sample" and a.root == sample.root
    _assert_canonical(a.train)
    _assert_canonical(a.test)
    # every kept image comes from the original split
    orig = {img.tobytes() for img in sample.train.images}
    assert all(img.tobytes() in orig for img in a.train.images)


def test_subset_uneven_and_partial(sample):
    s = sample.subset(train=25)
    counts = np.bincount(s.train.labels, minlength=10)
    assert counts.sum() == 25 and set(counts.tolist()) <= {2, 3}
    assert len(s.test) == len(sample.test)  # None keeps the whole split
    assert sample.subset() is sample
    with pytest.raises(ValueError, match="between 0 and 300"):
        sample.subset(train=301)


# ------------------------------------------------------------------------------------------------ augmentation


def _batch(sample, n=64):
    import torch

    return torch.from_numpy(sample.train.images[:n].copy())


def test_normalize(sample):
    import torch

    x = _batch(sample, 8)
    y = d.normalize(x)
    mean = torch.tensor(d.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(d.CIFAR10_STD).view(1, 3, 1, 1)
    assert y.dtype == torch.float32 and y.shape == x.shape
    torch.testing.assert_close(y, (x.double() / 255 - mean.double()).div(std.double()).float(), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        d.normalize(x.float())


def test_augment_deterministic_shape_dtype(sample):
    import torch

    x = _batch(sample)
    a = d.augment(x, torch.Generator().manual_seed(7))
    b = d.augment(x, torch.Generator().manual_seed(7))
    c = d.augment(x, torch.Generator().manual_seed(8))
    assert a.dtype == torch.float32 and a.shape == (64, 3, 32, 32) and a.device == x.device
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert x.dtype == torch.uint8  # input untouched
    np.testing.assert_array_equal(x.numpy(), sample.train.images[:64])


def test_augment_matches_per_image_reference(sample):
    import torch

    x = _batch(sample)
    out = d.augment(x, torch.Generator().manual_seed(11))
    dy, dx, flip = d.augment_params(len(x), torch.Generator().manual_seed(11))
    assert 0 < int(flip.sum()) < len(x), "flips should happen for some images, not all"
    assert len(set(dy.tolist())) > 3 and len(set(dx.tolist())) > 3, "crop offsets should vary"
    assert dy.min() >= 0 and dy.max() <= 8 and dx.min() >= 0 and dx.max() <= 8
    ref = []
    for i in range(len(x)):
        padded = torch.zeros(3, 40, 40, dtype=torch.uint8)
        padded[:, 4:36, 4:36] = x[i]
        crop = padded[:, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        if flip[i]:
            crop = crop.flip(-1)
        ref.append(crop)
    torch.testing.assert_close(out, d.normalize(torch.stack(ref)), rtol=0, atol=0)
    # the augmentation really changes images (crops/flips), except the identity draws
    moved = [(i, not torch.equal(out[i], d.normalize(x[i : i + 1])[0])) for i in range(len(x))]
    identity = [(int(dy[i]) == 4 and int(dx[i]) == 4 and not bool(flip[i])) for i in range(len(x))]
    assert all(m != ident for (_, m), ident in zip(moved, identity))


def test_augment_zero_padding_at_borders():
    import torch

    x = torch.full((32, 3, 32, 32), 255, dtype=torch.uint8)
    out = d.augment(x, torch.Generator().manual_seed(0))
    dy, dx, _ = d.augment_params(32, torch.Generator().manual_seed(0))
    mean = torch.tensor(d.CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(d.CIFAR10_STD).view(3, 1, 1)
    zero = (0 - mean) / std
    for i in range(32):
        is_pad = torch.isclose(out[i], zero.expand(3, 32, 32)).all(0)  # (32, 32) padded pixels
        rows_pad = int(is_pad.all(1).sum())
        cols_pad = int(is_pad.all(0).sum())
        assert rows_pad == abs(int(dy[i]) - 4)
        assert cols_pad == abs(int(dx[i]) - 4)
        if dy[i] < 4:
            assert is_pad[0].all()  # shifted down: zeros on top
        if dy[i] > 4:
            assert is_pad[-1].all()
    assert any(abs(int(v) - 4) > 0 for v in dy)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_reference(sample):
    import torch

    x = _batch(sample).cuda()
    out = d.augment(x, torch.Generator(device="cuda").manual_seed(5))
    assert out.device.type == "cuda" and out.dtype == torch.float32
    assert torch.equal(out, d.augment(x, torch.Generator(device="cuda").manual_seed(5)))
    dy, dx, flip = d.augment_params(len(x), torch.Generator(device="cuda").manual_seed(5))
    ref = d.normalize(d.crop_flip(x.cpu(), dy.cpu(), dx.cpu(), flip.cpu()))
    torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="generator lives on"):
        d.augment(x, torch.Generator())


def test_augment_rejects_wrong_input():
    import torch

    with pytest.raises(ValueError, match="uint8"):
        d.augment(torch.zeros(2, 3, 32, 32), torch.Generator())


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_sample(capsys):
    from se_res2net.cli import main

    assert main(["data", "--source", "sample", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "EMBEDDED SAMPLE" in out and d.SAMPLE_TRAIN_SHA256 in out and "300 images" in out


def test_cli_error_is_one_line(tmp_path, capsys):
    from se_res2net.cli import main

    assert main(["data", "--source", "folder", "--data-dir", str(tmp_path / "none"), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "none" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ full data set


@needs_full
@pytest.mark.slow
def test_full_folder_fingerprints_and_counts(full_loads):
    data, _, _, _ = full_loads
    assert data.source == "folder" and data.is_sample is False
    assert len(data.train) == 50_000 and len(data.test) == 10_000
    assert data.train.class_counts().tolist() == [5000] * 10
    assert data.test.class_counts().tolist() == [1000] * 10
    assert data.train.sha256 == d.CIFAR10_TRAIN_SHA256
    assert data.test.sha256 == d.CIFAR10_TEST_SHA256
    assert data.fingerprint == d.combine_fingerprints(d.CIFAR10_TRAIN_SHA256, d.CIFAR10_TEST_SHA256)
    # No two training images are byte-identical (README); canonical order is strict within a class.
    flat = data.train.images.reshape(50_000, -1)
    same_label = data.train.labels[1:] == data.train.labels[:-1]
    assert np.all(np.any(flat[1:] != flat[:-1], axis=1)[same_label])
    assert np.all(np.diff(data.train.labels) >= 0)


@needs_full
@pytest.mark.slow
def test_full_folder_reproduces_readme_stats(full_loads):
    data, _, _, _ = full_loads
    for split, ref_mean, ref_std in (
        (data.train, d.CIFAR10_MEAN, d.CIFAR10_STD),
        (data.test, d.CIFAR10_TEST_MEAN, d.CIFAR10_TEST_STD),
    ):
        mean, std = d.channel_stats(split.images)
        np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-6)
        np.testing.assert_allclose(std, ref_std, rtol=0, atol=1e-6)


@needs_full
@pytest.mark.slow
def test_full_folder_cache(full_loads, full_cache_dir):
    first, t_first, second, t_second = full_loads
    assert second.fingerprint == first.fingerprint
    assert np.array_equal(second.train.images, first.train.images)
    np.testing.assert_array_equal(second.test.labels, first.test.labels)
    assert list(Path(full_cache_dir).glob("cifar10-folder-*.npz"))
    assert t_second < 15, f"cached load took {t_second:.1f} s"


@needs_full
@pytest.mark.slow
def test_full_subset_is_stratified(full_loads):
    data, _, _, _ = full_loads
    s = data.subset(train=5000, test=1000, seed=0)
    assert s.train.class_counts().tolist() == [500] * 10
    assert s.test.class_counts().tolist() == [100] * 10
    assert not s.is_sample and s.fingerprint.endswith(":subset(train=5000,test=1000,seed=0)")
