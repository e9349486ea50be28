"""The plugins that ship with vws, loaded by short name (``load = ["presence"]``).

Each is an ordinary plugin module, riding the same hooks a user's plugin would.
"""
