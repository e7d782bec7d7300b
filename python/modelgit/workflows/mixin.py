"""The workflow API of a repository, mixed into :class:`modelgit.Repository`."""

from __future__ import annotations

from .checkpoints import CheckpointMixin
from .collab import CollabMixin
from .importing import ImportMixin
from .testing import TestingMixin


class WorkflowMixin(TestingMixin, CollabMixin, ImportMixin, CheckpointMixin):
    """Tests on the graph, update cascade and bisect (TestingMixin); push, pull and merge
    between repositories (CollabMixin); importing folders of models (ImportMixin);
    training checkpoints: checkpoint, restore, prune_checkpoints (CheckpointMixin)."""
