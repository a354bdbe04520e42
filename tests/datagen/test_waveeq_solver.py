"""The WaveEq simulator (varsep.datagen.waveeq): the stencil and the RK4 3/8 rule against analytic results,
the spec's physics, seeding, and the folder it writes."""


from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from varsep.datagen.waveeq import (
    GRID,
    NUM_FRAMES,
    draw_parameters,
    generate,
    integrate_second_order,
    laplacian,
    normalize,
    simulate,
    simulate_batch,
    source_mask,
)
from varsep.errors import DataError

# ------------------------------------------------------------------------------------------- stencil


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4, 5])
def test_stencil_is_exact_on_polynomials_up_to_degree_five(degree):
    """The 4th-order 5-point stencil differentiates polynomials of degree ≤ 5 exactly (per axis)."""
    x = torch.arange(GRID, dtype=torch.float64)
    rng = np.random.default_rng(degree)
    cx, cy = rng.normal(size=degree + 1), rng.normal(size=degree + 1)
    px = sum(c * ((x - 32) / 10) ** k for k, c in enumerate(cx))
    py = sum(c * ((x - 32) / 10) ** k for k, c in enumerate(cy))
    d2px = sum(c * k * (k - 1) * ((x - 32) / 10) ** (k - 2) / 100 for k, c in enumerate(cx) if k >= 2)
    d2py = sum(c * k * (k - 1) * ((x - 32) / 10) ** (k - 2) / 100 for k, c in enumerate(cy) if k >= 2)
    d2px = d2px if torch.is_tensor(d2px) else torch.zeros_like(x)
    d2py = d2py if torch.is_tensor(d2py) else torch.zeros_like(x)
    field = px[:, None] + py[None, :]  # a sum of 1-D polynomials: ∇² = p_x'' + p_y''
    expected = d2px[:, None] + d2py[None, :]
    lap = laplacian(field[None])[0]
    interior = slice(2, GRID - 2)
    torch.testing.assert_close(lap[interior, interior], expected[interior, interior], rtol=0, atol=1e-10)
    # The two-pixel border is left at zero.
    assert lap[:2].abs().max() == 0 and lap[:, -2:].abs().max() == 0


def test_stencil_on_a_product_is_fourth_order_accurate():
    """On a smooth non-polynomial field the error falls as h⁴ when the wavelength doubles."""
    errors = []
    for k in (0.4, 0.2):
        x = torch.arange(GRID, dtype=torch.float64)
        f = torch.sin(k * x)[:, None] * torch.cos(k * x)[None, :]
        exact = -2 * k * k * f
        lap = laplacian(f[None])[0]
        errors.append((lap - exact)[2:-2, 2:-2].abs().max().item())
    # Relative to the magnitude 2k², the error is O(k⁶) / k² = O(k⁴): ratio ≈ 2⁴ after normalising.
    rel = [e / (2 * k * k) for e, k in zip(errors, (0.4, 0.2), strict=True)]
    assert 14 < rel[0] / rel[1] < 18


# ----------------------------------------------------------------------------------------- RK4 3/8


def _oscillator_error(h: float, t_end: float = 2.0) -> float:
    """w'' = −ω² w + cos(t) with w(0)=1, w'(0)=0; exact: A cos ωt + cos t/(ω²−1) with A = 1 − 1/(ω²−1)."""
    omega = 3.0
    steps = round(t_end / h)

    def accel(t, w, out):
        return torch.mul(w, -omega * omega, out=out).add_(math.cos(t))

    w, _ = integrate_second_order(accel, torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                                  step=h, num_states=steps + 1)
    amp = 1 - 1 / (omega**2 - 1)
    exact = amp * math.cos(omega * t_end) + math.cos(t_end) / (omega**2 - 1)
    return abs(w.item() - exact)


def test_rk4_three_eighths_rule_converges_at_fourth_order():
    errors = [_oscillator_error(h) for h in (0.02, 0.01, 0.005)]
    orders = [math.log2(a / b) for a, b in zip(errors[:-1], errors[1:], strict=True)]
    assert all(3.9 < p < 4.15 for p in orders), orders  # → 4 as h → 0 (4.11, 4.06)


def test_three_eighths_stages_match_the_textbook_scheme():
    """Our second-order form equals the 3/8 rule written on y = (w, v) stage by stage."""
    def f(t, y):
        w, v = y
        return np.array([v, -4.0 * w + np.sin(3 * t)])

    y, h, t = np.array([0.3, -0.2]), 0.07, 0.0
    for _ in range(10):
        k1 = f(t, y)
        k2 = f(t + h / 3, y + h * k1 / 3)
        k3 = f(t + 2 * h / 3, y - h * k1 / 3 + h * k2)
        k4 = f(t + h, y + h * (k1 - k2 + k3))
        y = y + h * (k1 + 3 * k2 + 3 * k3 + k4) / 8
        t += h

    def accel(t, w, out):
        return torch.mul(w, -4.0, out=out).add_(math.sin(3 * t))

    w, v = integrate_second_order(accel, torch.tensor([0.3], dtype=torch.float64),
                                  torch.tensor([-0.2], dtype=torch.float64), step=h, num_states=11)
    np.testing.assert_allclose([w.item(), v.item()], y, rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------------------------- wave physics


def _lowest_mode() -> tuple[torch.Tensor, float]:
    """The lowest eigenmode of our 1-D stencil operator on indices 2..61 (zero border), and its eigenvalue."""
    n = GRID - 4
    c = [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12]
    a = np.zeros((n, n))
    for i in range(n):
        for k, coef in enumerate(c):
            j = i + k - 2
            if 0 <= j < n:
                a[i, j] = coef
    values, vectors = np.linalg.eigh(a)
    top = int(np.argmax(values))  # least negative = smoothest mode
    mode = np.zeros(GRID)
    mode[2:-2] = vectors[:, top] * np.sign(vectors[n // 2, top])
    return torch.tensor(mode), float(values[top])


def test_separable_mode_of_the_homogeneous_wave_equation_matches_its_analytic_solution():
    """With no source, w(x, y, 0) = φ(x)φ(y), w_t = 0 stays separable: w = cos(ωt) φ(x)φ(y).

    φ is the lowest eigenmode of the discrete operator (eigenvalue μ), so ω = c√(−2μ). ω also matches the
    continuous mode sin(πx/L), ω = c√2·π/L, of a domain whose walls sit on the held-at-zero pixels 1 and 62
    (L ≈ 61) to within half a pixel: the zero-padded 4th-order stencil places the wall there only roughly.
    """
    phi, mu = _lowest_mode()
    c = 350.0
    w0 = (phi[:, None] * phi[None, :])[None]
    states = []

    def accel(t, w, out):
        return laplacian(w, out).mul_(c * c)

    integrate_second_order(accel, w0, torch.zeros_like(w0), step=1e-3, num_states=300,
                           on_state=lambda k, w: states.append(w.clone()))
    omega = c * math.sqrt(-2 * mu)
    t = torch.arange(300, dtype=torch.float64) * 1e-3
    exact = torch.cos(omega * t)[:, None, None] * w0
    got = torch.cat(states)
    assert (got - exact).abs().max().item() < 1e-9 * w0.abs().max().item() * 300
    effective_length = c * math.sqrt(2) * math.pi / omega
    assert abs(effective_length - (GRID - 3)) < 0.5


def test_simulation_follows_the_spec():
    raw = simulate(c=350.0, f0=10.0)
    assert raw.shape == (300, GRID, GRID)
    assert np.all(raw[0] == 0)  # w = 0 at t = 0
    assert np.all(raw[:, :2] == 0) and np.all(raw[:, -2:] == 0)  # the 2-pixel border stays 0
    assert np.all(raw[:, :, :2] == 0) and np.all(raw[:, :, -2:] == 0)
    # Symmetric source and stencil: the field is symmetric under transposition.
    np.testing.assert_allclose(raw, raw.transpose(0, 2, 1), rtol=0, atol=1e-12)
    # Early on the source drives the centre: after one step w ≈ f0 h²/2 on the disk, 0 far away.
    mask = source_mask().numpy().astype(bool)
    np.testing.assert_allclose(raw[1][mask].mean(), 10.0 * 1e-6 / 2, rtol=0.05)
    assert raw[1][0:10, 0:10].max() == 0


def test_batched_simulation_equals_one_by_one():
    c, f0 = np.array([310.0, 395.0]), np.array([2.0, 29.0])
    batch = simulate_batch(c, f0, num_states=40).numpy()
    for i in range(2):
        np.testing.assert_array_equal(batch[i], simulate(c[i], f0[i], num_states=40))


def test_normalization_maps_each_sequence_to_unit_interval():
    states = torch.randn(3, 5, 4, 4, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]).view(3, 1, 1, 1)
    scaled, lo, hi = normalize(states)
    assert scaled.min(axis=(1, 2, 3)).tolist() == [0, 0, 0]
    np.testing.assert_allclose(scaled.max(axis=(1, 2, 3)), 1.0)
    np.testing.assert_allclose(scaled * (hi - lo)[:, None, None, None] + lo[:, None, None, None], states.numpy())


def test_parameters_are_seeded_and_in_range():
    c, f0, sensors = draw_parameters(50, seed=3)
    c2, f02, sensors2 = draw_parameters(50, seed=3)
    np.testing.assert_array_equal(c, c2)
    np.testing.assert_array_equal(sensors, sensors2)
    assert np.all((c >= 300) & (c <= 400)) and np.all((f0 >= 1) & (f0 <= 30))
    assert not np.array_equal(c, draw_parameters(50, seed=4)[0])
    # The WaveEq-100 pixels do not depend on how many sequences are drawn.
    np.testing.assert_array_equal(sensors, draw_parameters(7, seed=3)[2])
    assert sensors.shape == (100, 2) and sensors.min() >= 0 and sensors.max() < GRID
    # f0 is drawn before c for each sequence.
    rng = np.random.default_rng(np.random.SeedSequence(3).spawn(2)[0])
    assert (f0[0], c[0]) == (rng.uniform(1, 30), rng.uniform(300, 400))


# ----------------------------------------------------------------------------------- files and loading


def test_generated_folder_format(tiny_waveeq):
    meta = json.loads((tiny_waveeq / "meta.json").read_text())
    frames = np.load(tiny_waveeq / "frames.npy", mmap_mode="r")
    assert frames.shape == (8, NUM_FRAMES, GRID, GRID) and frames.dtype == np.float32
    assert meta["num_train"] == 6 and meta["dt"] == pytest.approx(0.002)
    assert len(meta["c"]) == len(meta["f0"]) == 8
    # Frames are every 2nd state of the normalised simulation (min/max over all 300 states).
    raw = simulate(meta["c"][5], meta["f0"][5])
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(frames[5], expected[::2], rtol=0, atol=1e-6)
    assert meta["raw_min"][5] == pytest.approx(raw.min()) and meta["raw_max"][5] == pytest.approx(raw.max())


def test_generation_is_reproducible_and_refuses_to_overwrite(tmp_path, tiny_waveeq):
    again = generate(tmp_path / "again", num_sequences=8, seed=0, progress=False)
    np.testing.assert_array_equal(np.load(again / "frames.npy"), np.load(tiny_waveeq / "frames.npy"))
    with pytest.raises(DataError, match="--overwrite"):
        generate(again, num_sequences=8, seed=0, progress=False)
    other = generate(again, num_sequences=8, seed=1, progress=False, overwrite=True)
    assert not np.array_equal(np.load(other / "frames.npy"), np.load(tiny_waveeq / "frames.npy"))


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    import varsep.datagen.waveeq as w

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(w, "simulate_batch", boom)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "x", num_sequences=4, progress=False)
    assert list(tmp_path.iterdir()) == []
