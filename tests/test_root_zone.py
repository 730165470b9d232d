"""The mass-curve root-zone storage (hybridland.physics.root_zone) against hand-computed cases."""

import numpy as np
import pytest

from hybridland.physics.root_zone import budyko_fu, mass_curve_storage


def test_budyko_curve_stays_under_both_limits_and_reaches_them():
    phi = np.geomspace(0.01, 100.0, 200)
    f = budyko_fu(phi)
    assert np.all(f <= np.minimum(1.0, phi) + 1e-12) and np.all(f >= 0)
    assert np.all(np.diff(f) > 0)  # more arid: a larger share of rain evaporates
    assert budyko_fu(0.01) == pytest.approx(0.01, rel=1e-3)
    assert budyko_fu(100.0) == pytest.approx(1.0, abs=1e-3)


def _rainy_then_dry(dry_days: int, years: int = 4, rain: float = 3.0):
    """Constant PET 2 mm/day; each year rain every day, then ``dry_days`` without."""
    year = np.full(365, rain)
    year[365 - dry_days:] = 0.0
    return np.tile(year, years), np.full(365 * years, 2.0)


def test_storage_is_the_water_used_over_the_dry_spell():
    p, pet = _rainy_then_dry(100)
    use = p.mean() * budyko_fu(pet.mean() / p.mean())  # constant PET: the same every day
    # the deficit grows by `use` on each dry day and is refilled on the first wet day
    assert mass_curve_storage(p, pet) == pytest.approx(100 * use, rel=1e-9)


def test_longer_dry_spells_need_more_storage_and_basins_are_independent():
    series = [_rainy_then_dry(d) for d in (0, 30, 90, 150)]
    p = np.stack([s[0] for s in series])
    pet = np.stack([s[1] for s in series])
    storage = mass_curve_storage(p, pet)
    assert storage.shape == (4,) and storage[0] == 0.0 and np.all(np.diff(storage) > 0)
    for i in range(4):
        assert mass_curve_storage(p[i], pet[i]) == pytest.approx(storage[i], rel=1e-12)


def test_mismatched_series_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        mass_curve_storage(np.ones(10), np.ones(11))
