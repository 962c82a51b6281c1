"""The deliberately shifted batch of `fti local apply --shifted` (local/samples.py)."""

from __future__ import annotations

from fti_operator.local.samples import SHIFT_FACTOR, shift_instances

INSTANCES = [
    {"cc_num": 1, "amount": 10.5, "category": "grocery", "items": 2},
    {"cc_num": 2, "amount": 3.0, "category": "grocery", "items": 1},
    {"cc_num": 3, "amount": None, "category": "travel", "items": 4},
    {"cc_num": 4, "amount": 7.25, "category": "online", "items": 3},
]


def test_numbers_grow_categories_collapse_keys_stay():
    shifted, how = shift_instances(INSTANCES, ["amount", "category", "items"])
    assert [i["cc_num"] for i in shifted] == [1, 2, 3, 4]
    assert [i["amount"] for i in shifted] == [10.5 * SHIFT_FACTOR, 3.0 * SHIFT_FACTOR, None, 7.25 * SHIFT_FACTOR]
    assert [i["items"] for i in shifted] == [2 * SHIFT_FACTOR, SHIFT_FACTOR, 4 * SHIFT_FACTOR, 3 * SHIFT_FACTOR]
    assert all(isinstance(i["items"], int) for i in shifted)  # an integer feature stays an integer
    # The batch's rarest category (ties broken by name), for every request.
    assert {i["category"] for i in shifted} == {"online"}
    assert how == {"amount": f"x{SHIFT_FACTOR}", "category": "all 'online'", "items": f"x{SHIFT_FACTOR}"}
    assert INSTANCES[0]["amount"] == 10.5  # the input is not modified


def test_only_the_named_features_move():
    shifted, how = shift_instances(INSTANCES, ["category"])
    assert [i["amount"] for i in shifted] == [i["amount"] for i in INSTANCES] and list(how) == ["category"]
    assert shift_instances(INSTANCES, []) == (INSTANCES, {})
