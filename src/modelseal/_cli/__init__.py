"""The ``modelseal`` command: thin wrappers over the library, one module per command group."""
