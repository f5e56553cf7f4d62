"""Bundled phrase lists, one sentence a line (append-only: ids are line numbers)."""
