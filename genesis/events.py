"""Event naming: `<Domain>.<AggregateRoot>[.<SubAggregate>].<ActionInPastTense>`.

The same rule is the CHECK `domain_events_event_type_format` in sql/migrations; a test keeps them equal.
"""

from __future__ import annotations

import re

PAST_TENSE_ACTIONS = (
    "Requested", "Created", "Proposed", "Submitted", "Confirmed",
    "Updated", "Revised", "Completed", "Finished", "Failed",
)  # fmt: skip

EVENT_TYPE_PATTERN = (
    r"^[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)?\.([A-Z][A-Za-z0-9]*)?"
    rf"({'|'.join(PAST_TENSE_ACTIONS)})$"
)
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)


def is_valid_event_type(event_type: str) -> bool:
    return _EVENT_TYPE.fullmatch(event_type) is not None
