"""The servers vws is measured against, each an ASGI app served by :mod:`bench.serve`."""
