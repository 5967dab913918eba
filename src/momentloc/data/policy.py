"""What to do with bad input: raise (default) or skip it, counting and logging reasons."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from momentloc.errors import DataError

log = logging.getLogger("momentloc.data")


@dataclass
class InputPolicy:
    """Collects bad-input reports.

    With ``mode="error"`` the first report raises it. With ``mode="skip"`` the caller
    drops the item; reports are counted and the first ``keep`` distinct reasons are kept for
    the log.
    Warnings (input repaired deliberately, such as an end clipped to the duration) never
    raise; they are counted per kind so ``momentloc stats`` can show them.
    """

    mode: Literal["error", "skip"] = "error"
    keep: int = 5
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)

    def bad(self, error: DataError) -> None:
        """Report a bad item: raises in ``error`` mode, records it in ``skip`` mode."""
        if self.mode == "error":
            raise error
        self.skipped += 1
        reason = str(error)  # the queries of one bad video share a reason: kept once
        if len(self.reasons) < self.keep and reason not in self.reasons:
            self.reasons.append(reason)

    def warn(self, kind: str, count: int = 1) -> None:
        """Count a deliberate repair of kind ``kind`` (e.g. ``"end clipped to duration"``)."""
        self.warnings[kind] = self.warnings.get(kind, 0) + count

    def log_summary(self, what: str) -> None:
        if self.skipped:
            log.warning("%s: skipped %d bad item(s); first: %s", what, self.skipped,
                        "; ".join(self.reasons))
        for kind, n in sorted(self.warnings.items()):
            log.info("%s: %s (%d)", what, kind, n)
