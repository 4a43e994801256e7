"""Payment files: local-currency credit files, the bank bulk-transfer file and pain.001.

Renders bytes from payees; writing them is `run/`"s (staging).
"""

__all__ = ["bankfile", "credit", "pain001", "render"]
