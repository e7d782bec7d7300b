"""``ModelgitCheckpoint``: a PyTorch Lightning callback that commits a training
checkpoint to a modelgit repository every ``every_n_train_steps`` optimizer steps or
every ``every_n_epochs`` epochs: the module's weights, the first optimizer's and LR
scheduler's state, the global step and the trainer's ``callback_metrics``."""

from __future__ import annotations

from typing import Any

from . import numeric_metrics

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the older package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as exc:
        raise ImportError(
            "modelgit.integrations.lightning needs PyTorch Lightning: "
            'pip install "modelgit[lightning]"'
        ) from exc

__all__ = ["ModelgitCheckpoint"]


class ModelgitCheckpoint(Callback):  # type: ignore[misc]
    """Commit ``repo.checkpoint(name, ...)`` from a Lightning ``Trainer``: every
    ``every_n_train_steps`` steps when given, else at the end of every
    ``every_n_epochs``-th epoch. ``save_state=False`` stores weights, step and metrics
    only."""

    def __init__(
        self,
        repo: Any,
        name: str,
        *,
        every_n_train_steps: int | None = None,
        every_n_epochs: int = 1,
        save_state: bool = True,
    ) -> None:
        super().__init__()
        self.repo = repo
        self.name = name
        self.every_n_train_steps = every_n_train_steps
        self.every_n_epochs = every_n_epochs
        self.save_state = save_state
        self.saved: list[Any] = []
        self._last_step = -1

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0 and trainer.global_step != self._last_step:
            self._save(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        n = self.every_n_epochs
        if not self.every_n_train_steps and n and (trainer.current_epoch + 1) % n == 0:
            self._save(trainer, pl_module)

    def _save(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        self._last_step = trainer.global_step
        optimizer = trainer.optimizers[0] if trainer.optimizers and self.save_state else None
        configs = getattr(trainer, "lr_scheduler_configs", None) or []
        scheduler = configs[0].scheduler if configs and self.save_state else None
        version = self.repo.checkpoint(
            self.name,
            pl_module,
            optimizer,
            step=int(trainer.global_step),
            metrics=numeric_metrics(trainer.callback_metrics),
            scheduler=scheduler,
        )
        self.saved.append(version)
