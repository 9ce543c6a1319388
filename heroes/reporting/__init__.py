"""Reporting: figures, tables, verdict sentences and the summary report."""
