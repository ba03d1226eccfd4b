"""sitemail's benchmarks, side by side with peers (not part of the sitemail package).

Run one with ``python -m bench.run NAME`` from the project root; see README.md.
"""
