"""The scale-out benchmark: vws on one process with the memory backplane, against vws on Redis
with one and two workers, and python-socketio with its Redis manager, in one run.

``python -m bench.scaleout`` (``--quick`` for a smoke run). See docs/scaling.md for the table.
"""
