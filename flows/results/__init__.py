"""Results from the bank or card operator: reading result files, and a simulated bank.

`formats.read_result_file` reads pain.002, the bank's bulk-transfer result file and the card
operator's credit result CSV into one row per answered attempt (`formats.RESULT_SCHEMA`);
`simulate.simulate` writes such files for a committed run's payment files (tests, demos).
"""

__all__ = ["formats", "simulate"]
