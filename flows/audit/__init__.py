"""The audit trail: records, signatures, the anchor, tallies, releases, verification, explain,
what-if.

Reads the committed trail (verify, explain, what-if) and the anchor outside it, and checks
payment files against the decision records they came from (payouts); records are written
through `run/`.
"""

__all__ = [
    "anchor",
    "attempts",
    "explain",
    "keyprint",
    "payouts",
    "records",
    "release",
    "reviews",
    "rotation",
    "signing",
    "tally",
    "verify",
    "whatif",
]
