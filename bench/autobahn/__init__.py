"""Autobahn|Testsuite's fuzzingclient against an echo route: ``python -m bench.autobahn.run``.

See bench/autobahn/README.md.
"""
