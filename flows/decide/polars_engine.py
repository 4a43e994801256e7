"""Which polars engine collects the pipeline's frames.

polars 2 collects with the streaming engine by default. At city scale (540,000 residents) the
frames fit in memory easily, and the in-memory engine ran our order-keeping joins 2.5x faster on
this 2-core machine (bench/, 2026-11-24). National scale (issue 7) revisits this.
"""

from __future__ import annotations

from typing import Literal

ENGINE: Literal["in-memory"] = "in-memory"
