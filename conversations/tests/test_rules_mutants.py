"""Rules of the conversations app that mutation testing (make mutants, docs/mutants.md) found untested:
each test here fails on a mutant that the rest of the suite let survive."""

import pytest

from conversations.context import select_context

FITTING = {
    "system_tokens": 0,
    "history": [(0, 10)],
    "context_window": 1000,
    "max_completion_tokens": 100,
    "margin": 10,
}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"history": []}, "history must contain at least the newest user message"),
        ({"context_window": 0}, "context_window must be positive (got 0)"),
        ({"system_tokens": -1}, "system_tokens must not be negative (got -1)"),
        ({"max_completion_tokens": -2}, "max_completion_tokens must not be negative (got -2)"),
        ({"margin": -3}, "margin must not be negative (got -3)"),
        ({"history": [(0, -4)]}, "token count of history[0] must not be negative (got -4)"),
        ({"history": [(0, -5), (1, 10)]}, "token count of history[0] must not be negative (got -5)"),
    ],
)
def test_a_caller_s_mistake_is_refused_naming_the_argument_and_its_value(overrides, message):
    with pytest.raises(ValueError) as raised:
        select_context(**FITTING | overrides)

    assert str(raised.value) == message


@pytest.mark.parametrize("zero", ["system_tokens", "max_completion_tokens", "margin"])
def test_zero_is_a_count(zero):
    plan = select_context(**FITTING | {zero: 0})

    assert plan.keys == (0,)
