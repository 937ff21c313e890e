"""Developer tools that generate files the project ships (the Max patch, the TouchOSC
layout): run ``python -m tools.NAME`` from the repository's root. Not part of the package."""
