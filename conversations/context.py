"""Choose which messages of a conversation go into the next request, from their stored token counts.

The prompt of one turn is: the system prompt, then the newest messages that fit, oldest first, then the
reply priming. It must leave room for the reply (the model's ``max_completion_tokens``) and a safety margin
inside the model's ``context_window``. Every count used here was computed once, when the message was saved
(:func:`conversations.tokens.message_tokens`); history is never re-tokenized.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Final

from aimodels.validators import CONTEXT_MARGIN
from conversations.tokens import REPLY_PRIMING

__all__ = ["DEFAULT_MARGIN", "ContextPlan", "ContextTooLong", "select_context"]

# Tokens kept free on top of the reply's reservation. The counts are exact for the models tiktoken knows,
# but OpenAI's cookbook calls its formula an estimate that may change between model versions (the older
# gpt-3.5-turbo-0301 framing differed by one token per message), providers may add a few tokens of their
# own, and models tiktoken does not know (local models behind an OpenAI-compatible API) are counted with
# o200k_base, which is close but not their tokenizer. 256 tokens is under 0.2% of a 128k window and
# about 6% of a 4k one: enough for the framing drift, cheap everywhere. Pass a larger margin for models
# whose tokenizer differs from the one they are counted with.
DEFAULT_MARGIN: Final = CONTEXT_MARGIN  # defined, with its reasons, in aimodels.validators


class ContextTooLong(Exception):
    """The newest message cannot be sent even alone: it needs more tokens than the model accepts.

    ``needed`` is the message's token count, ``available`` how many tokens a message may take with this model
    after the system prompt, the room for the reply, the margin and the reply priming (never negative;
    0 when the system prompt alone leaves no room). ``system_tokens`` is the system prompt's share.
    """

    def __init__(self, *, needed: int, available: int, system_tokens: int) -> None:
        self.needed = needed
        self.available = available
        self.system_tokens = system_tokens
        super().__init__(f"The message is {needed} tokens; this model accepts at most {available}.")


@dataclass(frozen=True, slots=True)
class ContextPlan[K: Hashable]:
    """What to send: the keys of the kept messages, oldest first (the newest message is always the last).

    ``omitted`` counts the older messages left out (they are always the oldest ones). ``total_tokens`` is the
    whole prompt as counted: system prompt + kept messages + reply priming, which is what the provider
    should report as ``usage.prompt_tokens`` for models tiktoken knows.
    """

    keys: tuple[K, ...]
    omitted: int
    total_tokens: int


def _check_count(value: int, what: str) -> int:
    if value < 0:
        raise ValueError(f"{what} must not be negative (got {value})")
    return value


def select_context[K: Hashable](
    *,
    system_tokens: int,
    history: Sequence[tuple[K, int]],
    context_window: int,
    max_completion_tokens: int,
    margin: int = DEFAULT_MARGIN,
) -> ContextPlan[K]:
    """Keep the newest messages whose stored token counts fit the model's window.

    ``history`` holds ``(key, token_count)`` pairs, oldest first; its last item is the newest user message,
    which is always kept. ``system_tokens`` is the system prompt's count as a message (0 without one).
    The budget for messages is ``context_window - max_completion_tokens - margin - REPLY_PRIMING -
    system_tokens``. Walking from the newest message back, messages are kept while the running total fits;
    the walk stops at the first that does not, so the kept part is a contiguous most recent suffix (a
    smaller older message is never pulled in across a gap). Costs O(number kept), never re-tokenizes.

    Raises :class:`ContextTooLong` when the newest message alone does not fit, and ``ValueError`` for an
    empty history or negative numbers.
    """
    if not history:
        raise ValueError("history must contain at least the newest user message")
    if context_window <= 0:
        raise ValueError(f"context_window must be positive (got {context_window})")
    _check_count(system_tokens, "system_tokens")
    _check_count(max_completion_tokens, "max_completion_tokens")
    _check_count(margin, "margin")

    budget = context_window - max_completion_tokens - margin - REPLY_PRIMING - system_tokens
    count = len(history)
    newest_tokens = _check_count(history[-1][1], f"token count of history[{count - 1}]")
    if newest_tokens > budget:
        raise ContextTooLong(needed=newest_tokens, available=max(budget, 0), system_tokens=system_tokens)

    used = newest_tokens
    start = count - 1
    for index in range(count - 2, -1, -1):
        tokens = _check_count(history[index][1], f"token count of history[{index}]")
        if used + tokens > budget:
            break
        used += tokens
        start = index

    return ContextPlan(
        keys=tuple(history[index][0] for index in range(start, count)),
        omitted=start,
        total_tokens=system_tokens + used + REPLY_PRIMING,
    )
