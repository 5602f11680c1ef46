"""Model-file security scanning: find code-execution payloads and hostile headers, never executing.

One scanner per format behind :class:`~modelseal.scan.interface.Scanner`; formats are sniffed
from content, never from file names; containers hand every member back to the dispatcher.
"""
