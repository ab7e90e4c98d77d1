"""Context selection: which stored messages fit the model's window, from their stored counts alone."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from conversations.context import DEFAULT_MARGIN, ContextPlan, ContextTooLong, select_context
from conversations.tokens import REPLY_PRIMING, encoding_for, message_tokens, messages_tokens

# With these numbers the messages' budget is 1000 - 200 - 100 - 3 - 97 = 600 tokens.
WINDOW, COMPLETION, MARGIN, SYSTEM = 1000, 200, 100, 97
BUDGET = 600


def history(*counts: int) -> list[tuple[int, int]]:
    """(key, token_count) pairs, oldest first; keys are the positions."""
    return list(enumerate(counts))


def plan_for(counts: Sequence[int], **overrides) -> ContextPlan[int]:
    arguments = {
        "system_tokens": SYSTEM,
        "history": history(*counts),
        "context_window": WINDOW,
        "max_completion_tokens": COMPLETION,
        "margin": MARGIN,
    } | overrides
    return select_context(**arguments)


def test_budget_constants_used_by_these_tests():
    assert WINDOW - COMPLETION - MARGIN - REPLY_PRIMING - SYSTEM == BUDGET


def test_everything_fits():
    plan = plan_for([10, 20, 30])
    assert plan == ContextPlan(keys=(0, 1, 2), omitted=0, total_tokens=SYSTEM + 60 + REPLY_PRIMING)


def test_exact_boundary_fits_with_zero_tokens_spare():
    plan = plan_for([100, 200, 300])
    assert plan.keys == (0, 1, 2)
    assert plan.omitted == 0
    # The prompt fills the window exactly up to the reply's reservation and the margin.
    assert plan.total_tokens == WINDOW - COMPLETION - MARGIN


def test_one_token_over_the_boundary_leaves_out_the_oldest():
    plan = plan_for([101, 200, 300])
    assert plan.keys == (1, 2)
    assert plan.omitted == 1
    assert plan.total_tokens == SYSTEM + 500 + REPLY_PRIMING


def test_only_the_newest_fits():
    plan = plan_for([5, 5, BUDGET])
    assert plan.keys == (2,)
    assert plan.omitted == 2
    assert plan.total_tokens == SYSTEM + BUDGET + REPLY_PRIMING


def test_kept_messages_are_a_contiguous_newest_suffix():
    # 501 does not fit after 50 + 50; the 1-token message before it would, but is not pulled across the gap.
    plan = plan_for([1, 501, 50, 50])
    assert plan.keys == (2, 3)
    assert plan.omitted == 2


def test_newest_alone_too_long_raises_with_the_numbers():
    with pytest.raises(ContextTooLong) as caught:
        plan_for([10, BUDGET + 1])
    assert caught.value.needed == BUDGET + 1
    assert caught.value.available == BUDGET
    assert caught.value.system_tokens == SYSTEM
    assert str(caught.value) == f"The message is {BUDGET + 1} tokens; this model accepts at most {BUDGET}."


def test_newest_alone_exactly_at_the_budget_is_sent():
    plan = plan_for([BUDGET])
    assert plan == ContextPlan(keys=(0,), omitted=0, total_tokens=WINDOW - COMPLETION - MARGIN)


def test_history_with_only_the_newest_message():
    plan = select_context(
        system_tokens=0, history=[("only", 12)], context_window=8192, max_completion_tokens=1024, margin=0
    )
    assert plan == ContextPlan(keys=("only",), omitted=0, total_tokens=12 + REPLY_PRIMING)


def test_large_system_prompt_leaves_less_room_for_history():
    counts = [100, 100, 100, 100]
    assert plan_for(counts, system_tokens=0).keys == (0, 1, 2, 3)
    plan = plan_for(counts, system_tokens=SYSTEM + 300)  # budget 300
    assert plan.keys == (1, 2, 3)
    assert plan.omitted == 1
    assert plan.total_tokens == SYSTEM + 300 + 300 + REPLY_PRIMING


def test_system_prompt_larger_than_the_window_reports_zero_available():
    with pytest.raises(ContextTooLong) as caught:
        plan_for([5], system_tokens=WINDOW * 2)
    assert caught.value.needed == 5
    assert caught.value.available == 0
    assert caught.value.system_tokens == WINDOW * 2


def test_completion_reservation_larger_than_window_raises():
    with pytest.raises(ContextTooLong) as caught:
        plan_for([5], max_completion_tokens=WINDOW)
    assert caught.value.available == 0


def test_margin_is_respected():
    counts = [140, 100, 100, 300]
    assert plan_for(counts, margin=MARGIN).keys == (1, 2, 3)  # 500 of 600 used; 140 more would not fit
    assert plan_for(counts, margin=MARGIN - 40).keys == (0, 1, 2, 3)  # a 40-token smaller margin: exactly enough
    assert plan_for(counts, margin=MARGIN - 39).keys == (1, 2, 3)  # one token short
    assert plan_for(counts, margin=0).keys == (0, 1, 2, 3)


def test_default_margin_applies_when_not_given():
    counts = [1] * 10 + [500]
    arguments = {"system_tokens": 0, "context_window": 1000, "max_completion_tokens": 200}
    implicit = select_context(history=history(*counts), **arguments)
    explicit = select_context(history=history(*counts), margin=DEFAULT_MARGIN, **arguments)
    assert implicit == explicit
    assert DEFAULT_MARGIN == 256
    # Budget 1000 - 200 - 256 - 3 = 541: all 510 tokens fit; with 50 one-token messages, only 41 of them do.
    assert implicit.keys == tuple(range(11)) and implicit.total_tokens == 510 + REPLY_PRIMING
    tighter = select_context(history=history(*([1] * 50 + [500])), **arguments)
    assert tighter.omitted == 50 - 41 and tighter.total_tokens == 541 + REPLY_PRIMING


class CountingSequence(Sequence[tuple[str, int]]):
    """A history that records which items were read."""

    def __init__(self, items: list[tuple[str, int]]) -> None:
        self._items = items
        self.reads = 0

    def __getitem__(self, index):  # type: ignore[override]
        self.reads += 1
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


def test_ten_thousand_messages_keeps_the_newest_that_fit_and_reads_only_those():
    keys = [str(uuid.uuid4()) for _ in range(10_000)]
    counts = [3 + (i % 17) for i in range(10_000)]  # 3..19 tokens each
    long_history = CountingSequence(list(zip(keys, counts, strict=True)))
    window, completion, margin, system = 8192, 1024, DEFAULT_MARGIN, 150
    budget = window - completion - margin - REPLY_PRIMING - system

    plan = select_context(
        system_tokens=system,
        history=long_history,
        context_window=window,
        max_completion_tokens=completion,
        margin=margin,
    )

    # Reference: the longest newest suffix whose sum fits, computed independently.
    suffix_sum, first_kept = 0, 10_000
    while first_kept > 0 and suffix_sum + counts[first_kept - 1] <= budget:
        first_kept -= 1
        suffix_sum += counts[first_kept]
    assert 0 < first_kept and 10_000 - first_kept > 100  # the fixture really trims, and keeps hundreds
    assert plan.keys == tuple(keys[first_kept:])
    assert plan.omitted == first_kept
    assert plan.total_tokens == system + suffix_sum + REPLY_PRIMING
    assert plan.total_tokens <= window - completion - margin
    assert plan.total_tokens + counts[first_kept - 1] > window - completion - margin
    # The walk stops at the first message that does not fit: no full scan of 10,000 rows.
    assert long_history.reads <= 2 * (10_000 - first_kept) + 2


def test_ten_thousand_messages_all_fitting_a_large_window():
    long_history = [(i, 10) for i in range(10_000)]
    plan = select_context(
        system_tokens=20, history=long_history, context_window=128_000, max_completion_tokens=16_384
    )
    assert plan.keys == tuple(range(10_000))
    assert plan.omitted == 0
    assert plan.total_tokens == 20 + 100_000 + REPLY_PRIMING


def test_total_tokens_equals_the_cookbook_count_of_the_request_sent():
    encoding = encoding_for("gpt-4o")
    system = {"role": "system", "content": "You are a terse assistant."}
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Message number {i}: " + "word " * (i % 40)}
        for i in range(301)
    ]
    stored = [(i, message_tokens(role=m["role"], content=m["content"], encoding=encoding)) for i, m in enumerate(turns)]
    plan = select_context(
        system_tokens=message_tokens(role=system["role"], content=system["content"], encoding=encoding),
        history=stored,
        context_window=4096,
        max_completion_tokens=1024,
    )
    assert plan.omitted > 0
    sent = [system] + [turns[key] for key in plan.keys]
    assert plan.total_tokens == messages_tokens(messages=sent, encoding=encoding)
    assert plan.total_tokens <= 4096 - 1024 - DEFAULT_MARGIN


@pytest.mark.parametrize(
    "overrides",
    [
        {"history": []},
        {"context_window": 0},
        {"system_tokens": -1},
        {"max_completion_tokens": -1},
        {"margin": -1},
        {"history": [(0, 10), (1, -5), (2, 10)]},
        {"history": [(0, -1)]},
    ],
)
def test_invalid_input_is_rejected(overrides):
    arguments = {
        "system_tokens": 0,
        "history": [(0, 10)],
        "context_window": 1000,
        "max_completion_tokens": 100,
        "margin": 10,
    } | overrides
    with pytest.raises(ValueError):
        select_context(**arguments)


def test_context_too_long_is_not_a_value_error():
    # Views catch it to show the user a message; it must not be confused with a programming error.
    assert not issubclass(ContextTooLong, ValueError)
