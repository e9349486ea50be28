"""The vws benchmark suite: vws against python-socketio, a Litestar floor and a bare ASGI ceiling.

``bench/setup.sh`` installs what it needs; ``python -m bench`` (or ``bench/run.sh``) runs every
scenario against every target and prints the table. See docs/performance.md.
"""
