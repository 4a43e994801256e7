"""What a run reads: extracts, spreadsheets, welfare status, reference data, the committed ledger,
officers' review sheets.

Reading files happens here and in `audit/` and `run/`; nothing here decides.
"""

__all__ = ["excel", "ingest", "ledger", "reference", "review_sheet", "welfare"]
