"""Lineage-aware storage through the Repository: deltas, casts, merges, prunes, chains,
lossy tolerances (ErrorBound, LowBit, Auto)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modelgit as mg
from conftest import assert_same_state
from modelgit import codec
from modelgit.tolerance import parse_tolerance


def model(seed: int, n: int = 300_000) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(n, generator=g) * 0.05,
        "b": torch.randn(512, generator=g),
        "steps": torch.tensor(7),
    }


def tune(sd: dict[str, torch.Tensor], seed: int, scale: float = 1e-3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: v + v * scale * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in sd.items()
    }


def new_bytes(repo: mg.Repository) -> int:
    assert repo.last_write is not None
    return repo.last_write.new_bytes


def test_fine_tune_is_a_delta_smaller_than_standalone(repo: mg.Repository) -> None:
    base = model(0)
    repo.add("base", base)
    standalone = new_bytes(repo)
    tuned = tune(base, 1)
    repo.add("tuned", tuned, parents="base")
    assert repo.last_write.delta > 0
    assert new_bytes(repo) < 0.75 * standalone
    assert_same_state(repo.load("tuned"), tuned)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cast_costs_almost_nothing(repo: mg.Repository, dtype: torch.dtype) -> None:
    base = model(2)
    repo.add("base", base)
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in base.items()}
    repo.add("cast", cast, parents="base", relation="cast")
    assert new_bytes(repo) < 2000
    assert_same_state(repo.load("cast"), cast)


def test_merge_and_prune_are_predicted(repo: mg.Repository) -> None:
    base = model(3)
    a, b = tune(base, 4), tune(base, 5)
    for name, sd, parents in (("base", base, None), ("a", a, "base"), ("b", b, "base")):
        repo.add(name, sd, parents=parents)
    merged = {k: (a[k] + b[k]) / 2 if a[k].is_floating_point() else a[k] for k in a}
    repo.add("merged", merged, parents=["a", "b"], relation="merge")
    assert new_bytes(repo) < 3000
    pruned = {k: v.clone() for k, v in a.items()}
    pruned["w"][pruned["w"].abs() < 0.04] = 0  # most of the tensor
    repo.add("pruned", pruned, parents="a", relation="prune")
    a_cost = repo.stats().models[1].stored_bytes
    assert new_bytes(repo) < a_cost / 4
    assert_same_state(repo.load("merged"), merged)
    assert_same_state(repo.load("pruned"), pruned)


def test_delta_chains_are_bounded(repo: mg.Repository) -> None:
    repo.max_depth = 3
    sd = model(6, n=50_000)
    versions = [sd]
    repo.add("m", sd)
    for i in range(8):
        sd = tune(sd, 10 + i)
        versions.append(sd)
        repo.commit("m", sd)
    depths = [r[0] for r in repo.catalog.query("SELECT depth FROM chunks")]
    assert max(depths) <= 3
    for number, want in enumerate(versions, start=1):
        assert_same_state(repo.load("m", version=number), want)
    assert repo.fsck().ok


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_error_bound_holds_for_every_element(repo: mg.Repository, dtype: torch.dtype) -> None:
    base = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model(7).items()}
    tuned = tune(base, 8)
    tuned["w"][:4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0]).to(dtype)
    repo.add("base", base)
    v = repo.add("approx", tuned, parents="base", tolerance=mg.ErrorBound(abs=1e-3))
    assert v.lossy and v.tolerance == {"kind": "error_bound", "abs": 1e-3, "rel": None}
    got = repo.load("approx")
    for k, want in tuned.items():
        if not want.is_floating_point():
            assert torch.equal(got[k], want)
            continue
        g, w = got[k].double(), want.double()
        fin = torch.isfinite(w)
        assert float((g[fin] - w[fin]).abs().max()) <= 1e-3
        assert torch.equal(got[k][~fin].view(torch.uint8), want[~fin].view(torch.uint8))


def test_children_of_a_lossy_parent_do_not_drift(repo: mg.Repository) -> None:
    base = model(9)
    repo.add("base", base, tolerance="abs=1e-3")
    assert repo.version("base").lossy
    child = tune(base, 10)
    repo.add("child", child, parents="base")  # lossless: exact, whatever the base
    assert not repo.version("child").lossy
    assert_same_state(repo.load("child"), child)


def test_lowbit_and_relative_bounds(repo: mg.Repository) -> None:
    base = model(11)
    tuned = tune(base, 12, scale=1e-2)
    repo.add("base", base)
    v = repo.add("lb", tuned, parents="base", tolerance=mg.LowBit(bits=4, group=64))
    assert v.lossy and v.tolerance == {"kind": "lowbit", "bits": 4, "group": 64}
    assert new_bytes(repo) < 0.25 * tuned["w"].nbytes
    got = repo.load("lb")
    assert torch.equal(got["w"], repo.load("lb")["w"])  # decoding is deterministic
    delta = (tuned["w"] - base["w"]).abs().max()
    assert float((got["w"] - tuned["w"]).abs().max()) < float(delta)
    repo.add("rel", tuned, parents="base", tolerance=mg.ErrorBound(rel=1e-3))
    got = repo.load("rel")
    bound = 1e-3 * float(tuned["w"].abs().max())
    assert float((got["w"] - tuned["w"]).abs().max()) <= bound


def neg_error(sd: dict[str, torch.Tensor]) -> float:
    """Test function for Auto: how close ``w`` stays to the reference (higher is better)."""
    return -float((sd["w"] - REFERENCE["w"]).abs().max())


def error(sd: dict[str, torch.Tensor]) -> float:
    return float((sd["w"] - REFERENCE["w"]).abs().max())


REFERENCE: dict[str, torch.Tensor] = {}


@pytest.mark.parametrize("higher", [True, False])
def test_auto_picks_the_most_compact_setting_that_keeps_the_metric(
    repo: mg.Repository, higher: bool
) -> None:
    base = model(13)
    tuned = tune(base, 14, scale=1e-2)
    REFERENCE.clear()
    REFERENCE.update(tuned)
    repo.add("base", base)
    fn = neg_error if higher else error
    v = repo.add("auto", tuned, parents="base",
                 tolerance=mg.Auto(test=fn, max_drop=2e-4, higher_is_better=higher))  # fmt: skip
    trials = v.metadata["auto_trials"]
    accepted = [t for t in trials if t["accepted"]]
    assert len(accepted) == 1 and trials[-1]["accepted"]
    assert all(t["drop"] > 2e-4 for t in trials[:-1])  # more aggressive ones were refused
    assert v.lossy and v.tolerance == accepted[0]["tolerance"]
    got = repo.load("auto")
    assert float((got["w"] - tuned["w"]).abs().max()) <= 2e-4


def test_tolerance_strings() -> None:
    assert parse_tolerance("abs=1e-4") == mg.ErrorBound(abs=1e-4)
    assert parse_tolerance("rel=0.01") == mg.ErrorBound(rel=0.01)
    assert parse_tolerance("bits=2,group=32") == mg.LowBit(2, 32)
    assert parse_tolerance(None) is None
    for bad in ("abs=", "abs=-1", "bits=3", "foo=1", "abs=1e-4,rel=1", "abs=nan", 5):
        with pytest.raises(mg.UnsupportedInput):
            parse_tolerance(bad)


def test_a_chain_at_the_bound_becomes_a_star_not_a_full_copy(repo: mg.Repository) -> None:
    """Past max_depth a new version is a delta against its parent's anchor (the base
    the parent was coded against), so the chain never stores a second full copy."""
    assert repo.layout() == {"max_depth": 4}  # the default
    repo.layout(max_depth=2)
    sd = model(6, n=50_000)
    versions = [sd]
    repo.add("m", sd)
    for i in range(8):
        sd = tune(sd, 20 + i)
        versions.append(sd)
        repo.commit("m", sd)
        assert repo.last_write is not None and repo.last_write.standalone == 0
    depths = [r[0] for r in repo.catalog.query("SELECT depth FROM chunks")]
    assert max(depths) == 2
    for number, want in enumerate(versions, start=1):
        assert_same_state(repo.load("m", version=number), want)
    assert repo.fsck().ok


def test_layout_is_kept_in_the_repository(tmp_path) -> None:  # noqa: ANN001
    with mg.init(tmp_path / "r") as repo:
        assert repo.layout(max_depth=1) == {"max_depth": 1}
        with pytest.raises(mg.UnsupportedInput, match="max_depth"):
            repo.layout(max_depth=-1)
        with pytest.raises(mg.UnsupportedInput, match="max_depth"):
            repo.max_depth = True  # type: ignore[assignment]
    with mg.open(tmp_path / "r") as again:
        assert again.max_depth == 1
        again.add("a", model(1, n=50_000))
        again.add("b", tune(model(1, n=50_000), 2), parents="a")
        again.add("c", tune(tune(model(1, n=50_000), 2), 3), parents="b")
        assert max(r[0] for r in again.catalog.query("SELECT depth FROM chunks")) == 1


def test_auto_tolerance_strings_and_relative_drops(repo: mg.Repository) -> None:
    assert parse_tolerance("auto:wf_funcs:mean_w:0.01") == mg.Auto("wf_funcs:mean_w", 0.01)
    rel = parse_tolerance("auto:wf_funcs:mean_w:2%")
    assert rel == mg.Auto("wf_funcs:mean_w", 0.02, relative=True)
    assert rel.allowed_drop(-50.0) == pytest.approx(1.0)
    low = parse_tolerance("auto-lower:wf_funcs:loss:0.1")
    assert low.higher_is_better is False and low.relative is False
    for bad in ("auto:", "auto:fn", "auto:wf_funcs:mean_w:lots", "auto:wf_funcs:mean_w"):
        with pytest.raises(mg.UnsupportedInput):
            parse_tolerance(bad)
    # relative: 1% of a metric of ~0.01 allows ~1e-4, absolute 1e-4 the same here
    base = model(21)
    tuned = tune(base, 22, scale=1e-2)
    REFERENCE.clear()
    REFERENCE.update(tuned)
    repo.add("base", base)

    def closeness(sd: dict[str, torch.Tensor]) -> float:
        return 0.01 - float((sd["w"] - REFERENCE["w"]).abs().max())

    v = repo.add("auto", tuned, parents="base",
                 tolerance=mg.Auto(test=closeness, max_drop=0.02, relative=True))  # fmt: skip
    assert v.tolerance is not None and v.metadata["auto_trials"][-1]["accepted"]
    assert float((repo.load("auto")["w"] - tuned["w"]).abs().max()) <= 0.02 * 0.01 + 1e-12


def test_cli_auto_tolerance(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from safetensors.torch import save_file

    from modelgit.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    base = model(23)
    tuned = tune(base, 24, scale=1e-2)
    REFERENCE.clear()
    REFERENCE.update(tuned)
    save_file(base, str(tmp_path / "base.safetensors"))
    save_file(tuned, str(tmp_path / "ft.safetensors"))
    repo = tmp_path / "r"
    assert main(["init", str(repo)]) == 0
    assert main(["--repo", str(repo), "add", "base", str(tmp_path / "base.safetensors")]) == 0
    args = ["--repo", str(repo), "add", "ft", str(tmp_path / "ft.safetensors"), "-p", "base",
            "--tolerance", "auto:test_storage_policy:neg_error:0.0002"]  # fmt: skip
    assert main(args) == 0
    with mg.open(repo) as r:
        v = r.version("ft")
        assert v.metadata["auto_trials"] and v.metadata["auto_trials"][-1]["accepted"]
        assert v.lossy and float((r.load("ft")["w"] - tuned["w"]).abs().max()) <= 2e-4
        r.register_test("close", "test_storage_policy:neg_error", threshold=-1e-5)
    ft = str(tmp_path / "ft.safetensors")
    assert main(["--repo", str(repo), "commit", "ft", ft, "--guard-tests"]) == 2  # no auto
    guarded = ["--repo", str(repo), "commit", "ft", ft, "--guard-tests",
               "--tolerance", "auto:test_storage_policy:neg_error:0.0002"]  # fmt: skip
    assert main(guarded) == 0
    with mg.open(repo) as r:
        assert float((r.load("ft")["w"] - tuned["w"]).abs().max()) <= 1e-5


def test_auto_guarded_by_the_registered_tests(repo: mg.Repository) -> None:
    """Auto(guard=True): every test registered on the model (with a threshold) must pass
    on the lossy candidate too; with test=None they alone decide."""
    base = model(25)
    tuned = tune(base, 26, scale=1e-2)
    REFERENCE.clear()
    REFERENCE.update(tuned)
    repo.add("base", base)
    lenient = mg.Auto(test="test_storage_policy:neg_error", max_drop=1.0)
    loose = repo.add("loose", tuned, parents="base", tolerance=lenient)
    repo.register_test("close", "test_storage_policy:neg_error", threshold=-2e-4)  # every model
    guarded = repo.add("guarded", tuned, parents="base",
                       tolerance=mg.Auto(test="test_storage_policy:neg_error", max_drop=1.0,
                                         guard=True))  # fmt: skip
    only = repo.add("only", tuned, parents="base", tolerance=mg.Auto(test=None, guard=True))
    assert loose.tolerance == loose.metadata["auto_trials"][0]["tolerance"]  # the first
    for v in (guarded, only):
        trials = v.metadata["auto_trials"]
        assert not trials[0]["accepted"] and trials[-1]["accepted"]
        assert float((repo.load(v.ref)["w"] - tuned["w"]).abs().max()) <= 2e-4
    assert guarded.metadata["auto_trials"] != loose.metadata["auto_trials"]
    with pytest.raises(mg.UnsupportedInput, match="needs a test, a guard"):
        mg.Auto(test=None)
    assert repo.fsck().ok


def _second_moment(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's exp_avg_sq at two checkpoints 20 steps apart: decayed by beta2^20, with
    fresh squared gradients added where a feature was active."""
    g = torch.Generator().manual_seed(seed)
    old = torch.rand(n, generator=g) ** 4 * 1e-6
    grad2 = torch.randn(n, generator=g) ** 2 * 1e-9
    active = torch.rand(n, generator=g) < 0.3
    return old, old * 0.999**20 + grad2 * 1e-3 * active


def test_a_decaying_second_moment_is_predicted_scaled(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old, new = _second_moment(600_000, 0)
    repo.add("opt", {"exp_avg_sq": old})
    repo.commit("opt", {"exp_avg_sq": new})
    scaled = new_bytes(repo)
    assert torch.equal(repo.load("opt")["exp_avg_sq"], new)  # bit for bit
    assert torch.equal(repo.load("opt@1")["exp_avg_sq"], old)
    assert repo.fsck().ok
    # the same pair without the scaled prediction: the plain delta carries the decay in
    # every element
    from modelgit.storage import policy

    monkeypatch.setattr(policy, "fit_scale", lambda *a: None)
    plain_repo = mg.init(tmp_path / "plain")
    plain_repo.add("opt", {"exp_avg_sq": old})
    plain_repo.commit("opt", {"exp_avg_sq": new})
    assert scaled < 0.6 * new_bytes(plain_repo)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_fit_scale_finds_a_common_factor(dtype: torch.dtype) -> None:
    import numpy as np

    from modelgit.dtypes import by_name
    from modelgit.storage.linear_fit import fit_scale

    g = torch.Generator().manual_seed(1)
    base = torch.randn(8192, generator=g).to(dtype)  # both signs: exp_avg decays too
    noisy = (base.double() * 0.9 * (1 + 1e-3 * torch.randn(8192, generator=g))).to(dtype)
    dt = by_name(str(dtype).removeprefix("torch."))
    word = f"<u{dt.size}"

    def words(t: torch.Tensor) -> np.ndarray:
        return t.contiguous().view({1: torch.uint8, 2: torch.int16, 4: torch.int32,
                                    8: torch.int64}[dt.size]).numpy().view(word)  # fmt: skip

    c = fit_scale(words(noisy), words(base), dt)
    assert c is not None and abs(c - 0.9) < 5e-3
    # a fine-tune (no common factor), too few usable elements, a length mismatch
    tuned = (base.double() * (1 + 1e-3 * torch.randn(8192, generator=g))).to(dtype)
    assert fit_scale(words(tuned), words(base), dt) is None
    zeros = torch.zeros(8192, dtype=dtype)
    assert fit_scale(words(zeros), words(base), dt) is None
    assert fit_scale(words(noisy)[:100], words(base), dt) is None


def test_fit_scale_ignores_integers_and_non_finite_values() -> None:
    import numpy as np

    from modelgit.dtypes import by_name
    from modelgit.storage.linear_fit import fit_scale

    ints = np.arange(1, 8193, dtype="<u4")
    assert fit_scale(ints * 2, ints, by_name("int32")) is None
    base = np.full(8192, np.inf, dtype=np.float32)
    assert fit_scale(base.view("<u4"), base.view("<u4"), by_name("float32")) is None


def test_an_exact_mean_is_not_fitted_again(repo: mg.Repository, monkeypatch) -> None:  # noqa: ANN001
    """A merge that the mean of its parents reproduces on the sample: the later plans
    (the fitted linear combination) are not fitted nor encoded; a weighted merge still
    is fitted, and both are stored small and read back exactly."""
    from modelgit.storage import policy

    fits: list[int] = []
    real = policy.fit_linear
    monkeypatch.setattr(policy, "fit_linear", lambda *a: fits.append(1) or real(*a))
    encodes: list[int] = []
    real_encode = policy._encode
    monkeypatch.setattr(
        policy, "_encode", lambda *a: encodes.append(a[2].predictor) or real_encode(*a)
    )
    base = model(3)
    a, b = tune(base, 4), tune(base, 5)
    for name, sd, parents in (("base", base, None), ("a", a, "base"), ("b", b, "base")):
        repo.add(name, sd, parents=parents)
    fits.clear()
    encodes.clear()
    mean = {k: (a[k] + b[k]) / 2 if a[k].is_floating_point() else a[k] for k in a}
    repo.add("mean", mean, parents=["a", "b"], relation="merge")
    assert new_bytes(repo) < 3000
    assert fits == [] and set(encodes) == {codec.MEAN}
    weighted = {k: 0.3 * a[k] + 0.7 * b[k] if a[k].is_floating_point() else a[k] for k in a}
    repo.add("weighted", weighted, parents=["a", "b"], relation="merge")
    assert new_bytes(repo) < 3000 and fits
    assert_same_state(repo.load("mean"), mean)
    assert_same_state(repo.load("weighted"), weighted)


def test_a_shortcut_taken_on_the_sample_is_checked_on_the_whole_chunk(
    repo: mg.Repository,
) -> None:
    """Two parents that agree on every sampled word (one in 64) but nowhere else: each
    predicts the sample of their mean exactly, yet only the mean plan codes the chunk
    small. Neither the early stop nor the merging of alike predictions may trust the
    sample (this merge was stored at 850 KiB instead of 220 B when they did)."""
    n = 1 << 18
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, generator=g), torch.randn(n, generator=g)
    b[::64] = a[::64]
    c = (a + b) / 2
    repo.add("a", {"w": a})
    repo.add("b", {"w": b})
    repo.add("c", {"w": c}, parents=["a", "b"], relation="merge", base="parent")
    assert new_bytes(repo) < 4096
    assert torch.equal(repo.load("c")["w"], c)
