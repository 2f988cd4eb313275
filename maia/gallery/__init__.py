"""maia's works and the listening room: saved pieces, blind A/B votes and the ratings they give, on SQLite.

    from maia.gallery import Gallery, open_gallery
    gallery, problem = open_gallery(limits)   # None and one line when the database cannot be used

One job per module: ``schema`` (migrations), ``blobs`` (files by content hash), ``store`` (pieces and votes),
``ratings`` (Bradley–Terry), ``transfer`` (export and import), ``shelf`` (maia's works, composed by the
shipped models), ``page`` (the Gallery and Listen tabs), ``cli`` (``python -m maia gallery ...``).
"""

from __future__ import annotations

from maia.errors import GalleryError
from maia.gallery.store import Gallery, Piece, Quotas

__all__ = ["Gallery", "GalleryError", "Piece", "Quotas", "open_gallery"]


def open_gallery(limits, quotas: Quotas | None = None) -> tuple[Gallery | None, str]:
    """The gallery in MAIA_DATA_DIR, or None and the one line saying why it cannot be used: the playground
    composes on without it."""
    try:
        return Gallery.open(limits, quotas), ""
    except GalleryError as e:
        return None, str(e)
