"""``ModelgitCallback``: a Hugging Face ``Trainer`` callback that commits a training
checkpoint to a modelgit repository every time the trainer saves (``save_steps``,
``save_strategy``): the model's weights, the optimizer's and the LR scheduler's state,
the global step and the latest logged metrics (loss, learning rate, eval metrics)."""

from __future__ import annotations

from typing import Any

from . import numeric_metrics

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - exercised without transformers
    raise ImportError(
        'modelgit.integrations.transformers needs transformers: pip install "modelgit[hf]"'
    ) from exc

__all__ = ["ModelgitCallback"]


class ModelgitCallback(TrainerCallback):  # type: ignore[misc]
    """Commit ``repo.checkpoint(name, ...)`` on every save of a ``Trainer``.

    ``save_state``: store the optimizer and scheduler state too (to resume with
    ``repo.restore``); False stores the weights, step and metrics only."""

    def __init__(self, repo: Any, name: str, *, save_state: bool = True) -> None:
        self.repo = repo
        self.name = name
        self.save_state = save_state
        self.saved: list[Any] = []  # the versions committed

    def on_save(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> Any:
        if not state.is_world_process_zero or model is None:
            return control
        metrics: dict[str, Any] = {}
        for entry in state.log_history:  # the latest value of each logged number
            if entry.get("step", 0) <= state.global_step:
                metrics.update(numeric_metrics({k: v for k, v in entry.items() if k != "step"}))
        model = getattr(model, "module", model)  # DataParallel / DDP wrappers
        version = self.repo.checkpoint(
            self.name,
            model,
            optimizer if self.save_state else None,
            step=int(state.global_step),
            metrics=metrics,
            scheduler=lr_scheduler if self.save_state else None,
        )
        self.saved.append(version)
        return control
