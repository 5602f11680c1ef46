"""``python -m modelseal``: the same as the ``modelseal`` command."""

from modelseal._cli.main import run

if __name__ == "__main__":
    run()
