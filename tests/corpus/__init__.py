"""Generated Exchange transport logs of other organizations, with their ground truth.

An independent oracle for ``sitemail troubleshoot --logs``: written from the
specs (``exchange-2010.md``, ``asa-esmtp.md``), importing nothing from
``sitemail``.  ``generate_org`` writes one organization (healthy, or with one
fault of a cause family in one of its variants) and returns its
:class:`Truth`; ``generate_corpus`` writes many.  ``accuracy.evaluate`` scores
a troubleshooter's reports against the truths.
"""

from tests.corpus.generate import generate_corpus, generate_org
from tests.corpus.truth import (
    CAUSES,
    GENERATOR_VERSION,
    VARIANTS,
    VISIBILITY,
    Truth,
    all_variants,
)

__all__ = [
    "CAUSES",
    "GENERATOR_VERSION",
    "VARIANTS",
    "VISIBILITY",
    "Truth",
    "all_variants",
    "generate_corpus",
    "generate_org",
]
