"""What a run reads: extracts, spreadsheets, welfare status, reference data, the committed ledger.

Reading files happens here and in `audit/` and `run/`; nothing here decides.
"""

__all__ = ["excel", "ingest", "ledger", "reference", "welfare"]
