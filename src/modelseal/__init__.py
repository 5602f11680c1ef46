"""modelseal: trust infrastructure for open-weight AI models.

Public modules are named after concepts (``release``, ``errors``, …); internals live in modules
whose names start with an underscore. Importing this package is cheap: sub-packages load lazily.
"""

from modelseal._version import __version__

__all__ = ["__version__"]
