"""analysis: quality metrics, mixing diagnostics and summaries built on the dilution engine."""
