"""The workflow API of a repository, mixed into :class:`modelgit.Repository`."""

from __future__ import annotations

from .collab import CollabMixin
from .testing import TestingMixin


class WorkflowMixin(TestingMixin, CollabMixin):
    """Tests on the graph, update cascade and bisect (TestingMixin); push, pull and merge
    between repositories (CollabMixin)."""
