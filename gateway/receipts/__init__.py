"""Issued customer receipts: the numbered Receipt row of a paid payment and its PDF (rendered by shared.receipts)."""
