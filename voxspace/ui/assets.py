"""The page's own CSS and JS (small files beside this module), handed to Blocks.launch()."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
CSS = HERE / "voxspace.css"
JS = HERE / "voxspace.js"


def head() -> str:
    """The script goes in <head> so the keyboard shortcuts work from the first key press."""
    return f"<script>{JS.read_text(encoding='utf-8')}</script>"
