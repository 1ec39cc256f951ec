"""trudi's examples: training entry points and the pieces they share, one package imported one way.

Run the entry points as modules from the repository root, e.g. ``python -m examples.train``; import
their pieces as ``from examples.<module> import ...`` (``from examples.build import build_policy``).
"""
