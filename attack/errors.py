"""Named exceptions of the attack library; messages say what was expected and what came."""
from __future__ import annotations


class AttackError(Exception):
    """Base class of every error the attack library raises on purpose."""


class ScoreInputError(AttackError):
    """A score was given input it cannot score (no captions, wrong shapes, bad parameters)."""
