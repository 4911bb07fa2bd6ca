"""Map images (interpolation with extrapolation), grid images and the smoothness AUC."""

from __future__ import annotations

import numpy as np
import pytest

from neurocarta.methods.topomap import grid_images, map_images, smoothness_auc
from neurocarta.methods.topomap.metrics import diverging_rgb


@pytest.fixture
def scattered():
    return np.random.default_rng(0).uniform(size=(150, 2))


def test_interpolation_reproduces_a_linear_field_and_extrapolates_to_a_border(scattered):
    f = scattered[:, 0] + 2 * scattered[:, 1]
    plain = map_images(scattered, f, res=40, interpolation="linear", extrapolate="none")
    xs = np.linspace(plain.extent[0], plain.extent[1], 40)
    ys = np.linspace(plain.extent[2], plain.extent[3], 40)
    gx, gy = np.meshgrid(xs, ys)
    inside = np.isfinite(plain.images[0])
    assert 0.6 < inside.mean() < 1.0  # the original's holes outside the convex hull
    np.testing.assert_allclose(plain.images[0][inside], (gx + 2 * gy)[inside], atol=1e-9)
    cubic = map_images(scattered, f, res=40)  # cubic, box border: no holes
    assert np.isfinite(cubic.images).all()
    gx, gy = np.meshgrid(np.linspace(*cubic.extent[:2], 40), np.linspace(*cubic.extent[2:], 40))
    centre = (np.abs(gx - 0.5) < 0.35) & (np.abs(gy - 0.5) < 0.35)
    assert np.abs(cubic.images[0] - (gx + 2 * gy))[centre].max() < 0.05
    disc = map_images(scattered, f, res=40, extrapolate="disc")
    centre = np.array([np.mean(disc.extent[:2]), np.mean(disc.extent[2:])])
    radius = (disc.extent[1] - disc.extent[0]) / 2
    gx, gy = np.meshgrid(np.linspace(*disc.extent[:2], 40), np.linspace(*disc.extent[2:], 40))
    outside = (gx - centre[0]) ** 2 + (gy - centre[1]) ** 2 > radius ** 2
    assert np.isnan(disc.images[0][outside]).all() and np.isfinite(disc.images[0][~outside]).all()
    # several groups at once equal one at a time
    both = map_images(scattered, np.c_[f, -f], res=20)
    np.testing.assert_allclose(both.images[1], map_images(scattered, -f, res=20).images[0])
    with pytest.raises(ValueError, match="finite"):
        map_images(scattered, np.full(150, np.nan))


def test_duplicate_and_collinear_positions_do_not_break_the_map():
    y = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])
    img = map_images(y, np.array([1.0, 3.0, 0.0, 5.0]), res=16, extrapolate="none").images[0]
    assert np.isfinite(img).any()


def test_grid_images_place_each_neuron_in_its_cell():
    img = grid_images(np.array([0, 5, 3]), (2, 3), np.array([1.0, 2.0, 3.0]))
    assert img.shape == (1, 2, 3)
    assert img[0, 0, 0] == 1.0 and img[0, 1, 2] == 2.0 and img[0, 1, 0] == 3.0
    assert np.isnan(img[0, 0, 1])


def test_smoothness_auc_is_zero_for_a_flat_map_and_ranks_smooth_below_noisy():
    flat = np.zeros((1, 64, 64))
    assert smoothness_auc(flat) == pytest.approx(0.0)
    gx, gy = np.meshgrid(np.linspace(0, 1, 64), np.linspace(0, 1, 64))
    smooth = np.sin(3 * gx + 2 * gy)[None]
    noisy = np.random.default_rng(0).normal(size=(1, 64, 64))
    for kind in ("blur", "resize"):
        assert smoothness_auc(smooth, kind) < 0.5 * smoothness_auc(noisy, kind)
    # computed on floats: a map and its negative are equally smooth (uint8 images wrap and differ)
    assert smoothness_auc(-smooth) == pytest.approx(smoothness_auc(smooth), rel=0.05)


def test_diverging_colours_are_symmetric_around_zero():
    rgb = diverging_rgb(np.array([-1.0, 0.0, 1.0, np.nan]))
    np.testing.assert_allclose(rgb, [[0, 0, 1], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
