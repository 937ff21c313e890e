"""The one error the analysis raises on purpose."""

from __future__ import annotations

from qbdi.errors import QbdiError


class AnalysisInputError(QbdiError, ValueError):
    """Input the analysis cannot measure: empty, a single frame, all silent, or misshapen.

    A ``ValueError`` too, so callers that only know the standard library can catch it.
    """
