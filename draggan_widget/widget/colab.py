"""Google Colab: its notebook shows third-party widgets only once asked to."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)


def enable_colab_widgets() -> bool:
    """In Google Colab, turn on its manager for third-party widgets (ipycanvas needs it).

    Colab shows only its built-in widgets until this is called; elsewhere it does nothing.

    Returns:
        Whether Colab was detected.
    """
    if "google.colab" not in sys.modules:
        return False
    try:
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
    except Exception:  # an old Colab: the canvas will not show, but say why
        logger.warning("could not enable Colab's custom widget manager", exc_info=True)
    return True
