"""The audit trail: decision and run records, tallies, verification, explain, what-if.

Reads the committed trail (verify, explain, what-if); records are written through `run/`.
"""

__all__ = ["explain", "keyprint", "records", "tally", "verify", "whatif"]
