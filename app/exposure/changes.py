"""What a ledger change moved, for the incremental walk: per buyer, the earliest and the latest delivery date and
the earliest original due date among the invoices whose balance, dates or buyer changed in this transaction.

The ledger notes every such invoice where it changes it (a new document, a correction at its old place and its
new one, every allocation taken or given back: `app.ledger.allocation.touch`); `app.exposure.service.
refresh_buyers` re-walks each buyer from the earliest noted delivery date, and past the latest one stops as soon as
its state is the stored walk's (nothing after it moved). Noting too much costs a longer walk;
a change not noted would leave a wrong figure, which `coverwatch recompute --check` and the differential tests
(tests/exposure/test_incremental_cover.py) are there to catch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

_KEY = "cover_changes"


@dataclass
class Since:
    delivered: date | None = None  # re-walk from this delivery date (None: no invoice moved)
    due: date | None = None  # the earliest original due date among them: stops of cover move only if before today
    last: date | None = None  # the latest delivery date among them: no invoice delivered after it moved

    def add(self, delivered: date, due: date) -> None:
        self.delivered = delivered if self.delivered is None else min(self.delivered, delivered)
        self.due = due if self.due is None else min(self.due, due)
        self.last = delivered if self.last is None else max(self.last, delivered)


def note(session: Session, buyer_id: int, delivered: date, due: date) -> None:
    changes: dict[int, Since] = session.info.setdefault(_KEY, {})
    changes.setdefault(buyer_id, Since()).add(delivered, due)


def take(session: Session, buyer_ids: Iterable[int]) -> dict[int, Since]:
    """What was noted of these buyers (an empty `Since` for a buyer with nothing noted), forgotten afterwards."""
    changes: dict[int, Since] = session.info.get(_KEY, {})
    return {b: changes.pop(b, Since()) for b in buyer_ids}
