import itertools

import pytest
import torch

from equireg_lit.regularizer import GROUP_NAMES, D4Element, ShiftElement, get_group

D4_ALL = [D4Element(k, f) for f in (False, True) for k in range(4)]


@pytest.mark.parametrize("name", GROUP_NAMES)
def test_inverse_undoes_action_exactly(name):
    g = get_group(name)
    x = torch.randn(2, 3, 8, 8)
    for e in g.elements:
        assert torch.equal(e.inverse().act(e.act(x)), x)
        assert torch.equal(e.act(e.inverse().act(x)), x)
        assert torch.equal(g.act_features(e.inverse(), g.act_features(e, x)), x)


@pytest.mark.parametrize("name", GROUP_NAMES)
def test_draws_are_non_identity_and_in_group(name):
    g = get_group(name)
    x = torch.randn(1, 1, 16, 16)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        e = g.sample(gen)
        assert e in g.elements
        assert not torch.equal(e.act(x), x)


@pytest.mark.parametrize("name", ["hflip", "vflip", "rot90", "rot180", "d4"])
def test_closure_with_identity(name):
    g = get_group(name)
    members = set(g.elements) | {D4Element(0, False)}
    if name == "rot90":  # the drawn set {k=1,3} generates the rotation subgroup C4
        members |= {D4Element(2, False)}
    for a, b in itertools.product(members, repeat=2):
        assert a.compose(b) in members


def test_composition_matches_sequential_action():
    x = torch.randn(1, 2, 6, 6)
    for a, b in itertools.product(D4_ALL, repeat=2):
        assert torch.equal(a.compose(b).act(x), a.act(b.act(x)))
    s, t = ShiftElement(1, -2), ShiftElement(3, 1)
    assert torch.equal(s.compose(t).act(x), s.act(t.act(x)))


def test_d4_has_seven_distinct_non_identity_elements():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    outs = {tuple(e.act(x).flatten().tolist()) for e in get_group("d4").elements}
    assert len(outs) == 7 and tuple(x.flatten().tolist()) not in outs


def test_named_actions():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    assert torch.equal(get_group("hflip").elements[0].act(x), x.flip(-1))
    assert torch.equal(get_group("vflip").elements[0].act(x), x.flip(-2))
    assert torch.equal(get_group("rot180").elements[0].act(x), x.flip(-1).flip(-2))
    assert [e.k for e in get_group("rot90").elements] == [1, 3]
    assert [e.k for e in get_group("rot90", all_rotations=True).elements] == [1, 2, 3]


def test_pseudoscalar_feature_action_flips_sign_under_reflection():
    x = torch.randn(1, 1, 4, 4)
    g = get_group("d4", feature_action="pseudoscalar")
    for e in g.elements:
        expected = -e.act(x) if e.flip else e.act(x)
        assert torch.equal(g.act_features(e, x), expected)
    assert torch.equal(get_group("hflip", feature_action="trivial").act_features(D4Element(0, True), x), x)


def test_shift_is_circular():
    x = torch.arange(4.0).view(1, 1, 1, 4)
    assert ShiftElement(0, 1).act(x).flatten().tolist() == [3.0, 0.0, 1.0, 2.0]
    assert len(get_group("shift", shifts=[2]).elements) == 4


def test_bad_names_and_shapes():
    with pytest.raises(ValueError, match="valid names: hflip"):
        get_group("mirror")
    with pytest.raises(ValueError, match="square"):
        get_group("rot90").check_acts_on((1, 1, 8, 16))
    get_group("hflip").check_acts_on((1, 1, 8, 16))
    with pytest.raises(ValueError, match="identity on the 8x8"):
        get_group("shift").check_acts_on((1, 1, 8, 8))
    with pytest.raises(ValueError, match="no spatial axes"):
        get_group("hflip").check_acts_on((4, 10))
