"""A plugin that cannot be imported."""

raise RuntimeError("broken at import time")
