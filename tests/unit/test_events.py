"""The Python event-name validator (the SQL CHECK is held equal to it in tests/integration)."""

from __future__ import annotations

import pytest

from genesis.events import PAST_TENSE_ACTIONS, is_valid_event_type

# Shared with tests/integration/sql/test_event_store.py, which runs the same names through the SQL CHECK.
GOOD_NAMES = [
    "Genesis.Session.Created",
    "Genesis.Session.ConceptGenerationRequested",
    "Genesis.Session.ConceptProposed",
    "Genesis.Session.FeedbackSubmitted",
    "Genesis.Session.StageConfirmed",
    "Genesis.Session.Finished",
    "Genesis.Session.CommandFailed",
    "Genesis.Session.Stage.Confirmed",
    "Genesis.Session.Concept.GenerationRequested",
    "Novel.Chapter2.Draft3Revised",
    "A.B.Updated",
    "A.B.C.Completed",
    *(f"Genesis.Session.{action}" for action in PAST_TENSE_ACTIONS),
]
BAD_NAMES = [
    "",
    "Created",
    "Genesis.Created",
    "Genesis.Session.Create",
    "Genesis.Session.Creating",
    "Genesis.Session.CreatedNow",
    "Genesis.Session.created",
    "genesis.Session.Created",
    "Genesis.session.Created",
    "Genesis.Session.Sub.Deep.Created",
    "Genesis..Session.Created",
    "Genesis.Session..Created",
    ".Genesis.Session.Created",
    "Genesis.Session.Created.",
    "Genesis.Session.Created ",
    " Genesis.Session.Created",
    "Genesis.Session.Created\n",
    "Genesis.Session-X.Created",
    "Genesis.Session_X.Created",
    "1Genesis.Session.Created",
    "Genesis.Session.ÜberCreated",
    "Genesis.Séssion.Created",
    "Genesis.Session.Deleted",
    "Genesis Session Created",
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    assert is_valid_event_type(name)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names(name: str) -> None:
    assert not is_valid_event_type(name)
