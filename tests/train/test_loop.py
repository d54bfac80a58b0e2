"""Helpers of the shared training loop."""

from autonad.train.loop import first_difference


def test_first_difference_names_the_first_differing_key_inside_lists_too():
    then = {"stages": [{"width": [32, 64]}, {"width": [64]}], "name": "a"}
    now = {"stages": [{"width": [32, 64]}, {"width": [96]}], "name": "a"}
    assert first_difference(then, now) == ("stages[1].width[0]", 64, 96)
    assert first_difference({"d": [0]}, {"d": [0, 8]}) == ("d", [0], [0, 8])  # another length: the whole list
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == ("b", None, 2)
