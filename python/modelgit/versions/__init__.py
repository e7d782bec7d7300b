"""The versions layer: the engine that stores models as versions over a storage backend.

``engine`` (:class:`VersionStore`: the versions API and the internal API services use),
``refs`` (references and catalog reads), ``write`` (store and publish a version),
``load``, ``load_into``, ``export``, ``diff`` (``structure``: the structural diff),
``auto`` (the ``Auto`` tolerance) and ``version`` (the :class:`Version` record). It
never imports ``lineage``, ``workflows``, ``repository`` or ``cli``.
"""

from __future__ import annotations

from .engine import VersionStore
from .version import ParentLink, Version

__all__ = ["VersionStore", "Version", "ParentLink"]
