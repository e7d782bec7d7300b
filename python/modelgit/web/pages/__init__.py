"""The pages of the web UI, one module each: graph (and versions), model, diff, search,
storage, errors. Each takes a :class:`~modelgit.web.data.Snapshot` and returns HTML (and
the data file its script reads)."""
