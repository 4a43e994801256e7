"""What people read: the run report (Markdown, HTML), the program page, artifacts, the terminal.

Renders text from a run record and its tally; no files.
"""

__all__ = ["artifacts", "html", "markdown", "program_page", "terminal"]
