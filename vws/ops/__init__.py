"""Running a node: Prometheus export, live reload of routes.toml, the ``--workers`` supervisor."""
