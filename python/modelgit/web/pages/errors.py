"""The page of a request that names nothing here (a 404) or fails."""

from __future__ import annotations

from ..html import esc, page

__all__ = ["error_page"]


def error_page(title: str, message: str, *, root: str, mode: str) -> str:
    body = (
        f'<h1 id="error-title">{esc(title)}</h1><p class="error" id="error-message">'
        f'{esc(message)}</p><p><a href="{esc(root)}index.html">Back to the graph</a></p>'
    )
    return page(title, body, root=root, mode=mode)
