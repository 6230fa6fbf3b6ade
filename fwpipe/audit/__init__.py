"""`fwpipe audit`: totals, lengths, exact and near duplicates, leakage, budget verdict."""

from fwpipe.audit.run import audit

__all__ = ["audit"]
