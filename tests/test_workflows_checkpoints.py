"""Training checkpoints: repo.checkpoint / restore / prune_checkpoints, the CLI (log,
prune-checkpoints), bisect over checkpoints, and the Trainer / Lightning callbacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modelgit as mg
from conftest import assert_same_state
from modelgit.errors import UnsupportedInput

STEPS, EVERY = 20, 2


def _mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, 8, 6, generator=g)
    return x, x.sum(-1, keepdim=True).sin()


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.9**s)
    return model, opt, sched


def _train(model, opt, sched, start, stop, repo=None, name="mlp") -> list[float]:
    x, y = _data()
    losses = []
    for step in range(start, stop):
        opt.zero_grad()
        loss = ((model(x[step]) - y[step]) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if repo is not None and (step + 1) % EVERY == 0:
            repo.checkpoint(name, model, opt, step=step + 1, metrics={"loss": loss.item()},
                            scheduler=sched)  # fmt: skip
    return losses


@pytest.fixture
def trained(repo: mg.Repository) -> tuple[mg.Repository, list[float]]:
    model, opt, sched = _setup()
    return repo, _train(model, opt, sched, 0, STEPS, repo)


def test_resuming_from_a_checkpoint_is_bit_exact(trained) -> None:
    repo, losses = trained
    assert [v.number for v in repo.checkpoints("mlp")] == list(range(1, STEPS // EVERY + 1))
    model, opt, sched = _setup()
    torch.manual_seed(123)  # a fresh model: other weights
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.9**s)
    v = repo.restore("mlp@5", model, opt, sched)
    step = v.metadata["checkpoint"]["step"]
    assert step == 5 * EVERY
    assert sched.last_epoch == step and opt.param_groups[0]["lr"] == 3e-2 * 0.9**step
    resumed = _train(model, opt, sched, step, STEPS)
    assert resumed == losses[step:]  # bit for bit


def test_weights_readers_see_only_the_weights(trained, tmp_path: Path) -> None:
    repo, _ = trained
    names = {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert set(repo.load("mlp@3")) == names
    assert set(repo.load("mlp@3", keys=["0.bias"])) == {"0.bias"}
    model = _mlp()
    assert repo.load_into(model, "mlp@3") is not None  # strict: nothing unexpected
    repo.export("mlp@3", tmp_path / "out.safetensors")
    from safetensors.torch import load_file

    assert set(load_file(tmp_path / "out.safetensors")) == names
    d = repo.diff("mlp@2", "mlp@3")
    assert {t for t in json.dumps(d.to_json()).split('"') if t.startswith("@state")} == set()
    state = repo.load_state("mlp@3")
    assert set(state) == {"optimizer", "scheduler"}
    assert state["scheduler"]["last_epoch"] == 6
    assert repo.fsck().ok


def test_reserved_names_are_refused(repo: mg.Repository) -> None:
    with pytest.raises(UnsupportedInput, match="reserves"):
        repo.add("m", {"@state/x": torch.zeros(3)})
    with pytest.raises(UnsupportedInput, match="reserves"):
        repo.checkpoint("m", {"@state/x": torch.zeros(3)}, torch.optim.SGD([torch.zeros(1)]))
    with pytest.raises(UnsupportedInput, match="step must be an integer"):
        repo.checkpoint("m", {"w": torch.zeros(3)}, step=2.5)
    with pytest.raises(UnsupportedInput, match="cannot store"):
        repo.checkpoint("m", {"w": torch.zeros(3)}, {"state": {}, "odd": object()})
    for odd in (5, "adam"):  # stored, restore() could not load it back: refused up front
        with pytest.raises(UnsupportedInput, match="optimizer must be a torch optimizer"):
            repo.checkpoint("m", {"w": torch.zeros(3)}, optimizer=odd)
    with pytest.raises(UnsupportedInput, match="scheduler must be"):
        repo.checkpoint("m", {"w": torch.zeros(3)}, scheduler=[1])
    assert "m" not in repo


def test_checkpoint_of_a_state_dict_without_optimizer(repo: mg.Repository) -> None:
    sd = {"w": torch.arange(5.0)}
    v = repo.checkpoint("plain", sd, step=7, metrics={"acc": torch.tensor(0.5)})
    assert v.metadata["checkpoint"] == {"step": 7, "metrics": {"acc": 0.5}}
    assert repo.load_state("plain") == {}
    target = {"w": torch.zeros(5)}
    repo.restore("plain", target)
    assert torch.equal(target["w"], sd["w"])
    with pytest.raises(UnsupportedInput, match="no optimizer state"):
        repo.restore("plain", target, torch.optim.SGD([torch.zeros(1)], lr=0.1))


def _cli(repo: mg.Repository, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelgit", "--repo", str(repo.root), *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip


def test_log_shows_step_and_metrics(trained) -> None:
    repo, losses = trained
    out = _cli(repo, "log", "mlp").stdout
    assert f"checkpoint  step 20  loss={losses[-1]:.6g}  (+ optimizer, scheduler state)" in out
    data = json.loads(_cli(repo, "log", "mlp", "--json").stdout)
    assert data[0]["step"] == 20 and data[0]["metrics"] == {"loss": losses[-1]}
    assert "@state" not in _cli(repo, "show", "mlp@2").stdout


def test_prune_states_keeps_weights_and_frees_space(trained) -> None:
    repo, losses = trained
    before = {v.ref: repo.load(v.ref) for v in repo.versions("mlp")}
    repo.gc()
    stored = repo.stats().stored_bytes
    best = min(range(len(losses) // EVERY), key=lambda i: losses[i * EVERY + EVERY - 1]) + 1
    report = repo.prune_checkpoints("mlp", keep_last=2, keep_best="loss")
    assert set(report.kept) == {"mlp@9", "mlp@10", f"mlp@{best}"}
    assert len(report.states) == 10 - len(report.kept)
    repo.gc()
    assert repo.stats().stored_bytes < stored
    for ref, sd in before.items():
        assert_same_state(repo.load(ref), sd)
    assert repo.load_state("mlp@1") == {} and set(repo.load_state("mlp@10")) == {
        "optimizer", "scheduler",
    }  # fmt: skip
    assert repo.version("mlp@1").metadata["checkpoint"]["state_dropped"] is True
    assert repo.fsck().ok
    assert (
        repo.prune_checkpoints("mlp", keep_last=2).states == [f"mlp@{best}"] or best >= 9
    )  # the best one's state goes once it is no longer asked for
    assert "(training state dropped)" in _cli(repo, "log", "mlp").stdout


def test_prune_versions_relinks_the_chain(trained) -> None:
    repo, _ = trained
    kept = {ref: repo.load(ref) for ref in ("mlp@4", "mlp@9", "mlp@10")}
    repo.tag("mlp@4", "good")
    repo.gc()
    stored = repo.stats().stored_bytes
    out = _cli(repo, "prune-checkpoints", "mlp", "--keep-last", "2", "--drop-versions", "--json")
    report = json.loads(out.stdout)
    assert report["skipped"] == ["mlp@4"]
    assert sorted(report["versions"]) == sorted(f"mlp@{i}" for i in (1, 2, 3, 5, 6, 7, 8))
    assert [v.number for v in repo.versions("mlp")] == [4, 9, 10]
    assert [p.ref for p in repo.version("mlp@9").parents] == ["mlp@4"]
    assert repo.version("mlp@4").parents == ()
    repo.gc()
    assert repo.stats().stored_bytes < stored
    for ref, sd in kept.items():
        assert_same_state(repo.load(ref), sd)
    assert repo.fsck().ok
    model, opt, sched = _setup()
    repo.restore("mlp@9", model, opt, sched)  # the state of kept versions is whole


def test_prune_arguments(trained) -> None:
    repo, _ = trained
    with pytest.raises(mg.errors.InvalidArgument):
        repo.prune_checkpoints("mlp", mode="everything")
    with pytest.raises(mg.errors.InvalidArgument):
        repo.prune_checkpoints("mlp", keep_last=-1)
    assert "nothing to prune" in _cli(repo, "prune-checkpoints", "mlp", "--keep-last", "99").stdout


def weight_blowup(sd: dict[str, torch.Tensor]) -> float:
    """An 'eval metric' that breaks (lower is better)."""
    return float(sd["w"].abs().max())


def test_bisect_finds_the_checkpoint_where_the_metric_broke(repo: mg.Repository) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(4))], lr=0.1)
    for step in range(1, 17):
        w = torch.full((4,), 0.1 * step if step < 11 else 100.0 + step)
        repo.checkpoint("run", {"w": w}, opt, step=step * 50)
    result = repo.bisect("test_workflows_checkpoints:weight_blowup", "run@1", "run@16",
                         threshold=10.0, higher_is_better=False)  # fmt: skip
    assert result.first_bad == "run@11"
    assert repo.version(result.first_bad).metadata["checkpoint"]["step"] == 550


def test_hf_trainer_callback(repo: mg.Repository, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # the Trainer needs it
    from modelgit.integrations.transformers import ModelgitCallback

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (16, 8), generator=g)
    data = [{"input_ids": ids[i], "labels": int(ids[i, 0] % 2)} for i in range(16)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=6,
        save_steps=2, logging_steps=1, report_to=[], use_cpu=True, save_strategy="steps",
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    cb = ModelgitCallback(repo, "bert")
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[cb])
    trainer.train()
    cps = repo.checkpoints("bert")
    assert [v.metadata["checkpoint"]["step"] for v in cps] == [2, 4, 6]
    logged = {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
    for v in cps:
        info = v.metadata["checkpoint"]
        assert info["metrics"]["loss"] == logged[info["step"]]
    assert set(repo.load_state("bert@3")) == {"optimizer", "scheduler"}
    assert_same_state(repo.load("bert@3"), {k: v for k, v in model.state_dict().items()})


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_lightning_callback(repo: mg.Repository, tmp_path: Path) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from modelgit.integrations.lightning import ModelgitCheckpoint

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch, _):
            x, y = batch
            loss = ((self.net(x) - y) ** 2).mean()
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=1e-2)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}

    torch.manual_seed(0)
    x, y = _data()
    loader = torch.utils.data.DataLoader(list(zip(x, y, strict=True)), batch_size=None)
    cb = ModelgitCheckpoint(repo, "lit", every_n_train_steps=5)
    trainer = pl.Trainer(
        max_steps=10, callbacks=[cb], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        default_root_dir=str(tmp_path),
    )  # fmt: skip
    module = Module()
    trainer.fit(module, loader)
    cps = repo.checkpoints("lit")
    assert [v.metadata["checkpoint"]["step"] for v in cps] == [5, 10]
    assert "train_loss" in cps[-1].metadata["checkpoint"]["metrics"]
    assert set(repo.load_state("lit")) == {"optimizer", "scheduler"}
    assert_same_state(repo.load("lit"), module.state_dict())


def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in ("transformers", "lightning", "lightning.pytorch", "lightning.pytorch.callbacks",
                "pytorch_lightning", "pytorch_lightning.callbacks"):  # fmt: skip
        monkeypatch.setitem(sys.modules, mod, None)
    for integration, extra in (("transformers", "hf"), ("lightning", "lightning")):
        monkeypatch.delitem(sys.modules, f"modelgit.integrations.{integration}", raising=False)
        with pytest.raises(ImportError, match=rf'pip install "modelgit\[{extra}\]"'):
            __import__(f"modelgit.integrations.{integration}")


def test_checkpoints_travel_with_push(trained, tmp_path: Path) -> None:
    repo, losses = trained
    repo.prune_checkpoints("mlp", keep_last=3, mode="versions")
    other = mg.init(tmp_path / "other")
    try:
        repo.push(other.root)
        assert [v.number for v in other.versions("mlp")] == [8, 9, 10]
        model, opt, sched = _setup()
        v = other.restore("mlp@8", model, opt, sched)
        step = v.metadata["checkpoint"]["step"]
        assert _train(model, opt, sched, step, STEPS) == losses[step:]
        assert other.fsck().ok
    finally:
        other.close()


def test_optimizer_tolerance_bounds_the_state_and_keeps_the_weights(
    repo: mg.Repository, tmp_path: Path
) -> None:
    """optimizer_tolerance: the optimizer tensors within the bound (rel: of each tensor's
    largest magnitude), the weights bit-exact, the version not marked lossy, fewer bytes."""
    exact = mg.init(tmp_path / "exact")
    model, opt, sched = _setup()
    _train(model, opt, sched, 0, 3)
    bound = mg.ErrorBound(rel=1e-3)
    for step in (3, 6):
        if step == 6:
            _train(model, opt, sched, 3, 6)
        v = repo.checkpoint("mlp", model, opt, step=step, optimizer_tolerance=bound)
        exact.checkpoint("mlp", model, opt, step=step)
        assert not v.lossy and v.metadata["checkpoint"]["state_tolerance"] == bound.to_json()
        assert repo.last_write.new_bytes < exact.last_write.new_bytes
    assert_same_state(repo.load("mlp"), model.state_dict())
    fresh = _mlp()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=3e-2, weight_decay=0.01)
    repo.restore("mlp", fresh, fresh_opt)
    assert_same_state(fresh.state_dict(), model.state_dict())
    want, got = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    for i, s in want.items():
        for k in ("exp_avg", "exp_avg_sq"):
            limit = 1e-3 * float(s[k].abs().max())
            assert float((got[i][k] - s[k]).abs().max()) <= limit * (1 + 1e-6)
        assert torch.equal(got[i]["step"], s["step"])
    with pytest.raises(UnsupportedInput):
        repo.checkpoint("mlp", model, opt, optimizer_tolerance=mg.Auto(test="x:y"))
    assert repo.fsck().ok
