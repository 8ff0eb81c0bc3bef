"""The ECGSYN RR tachogram: a Gaussian process with a bimodal (Mayer LF / respiratory HF) spectrum.

McSharry et al. (2003) draw the RR-interval series by spectral synthesis: the power spectrum is
the sum of two Gaussians, centred on the Mayer-wave frequency (LF, ~0.1 Hz) and the respiratory
frequency (HF, ~0.25 Hz), with powers in the ratio LF/HF; random phases and an inverse FFT give
a stationary series, which is scaled to the requested RR standard deviation and shifted to the
requested mean RR (60 / mean heart rate).

Two deliberate departures from the C program, both for fidelity to the *configured spectrum*:
the series is synthesised over ``window_s`` seconds (64 s by default, a 1/64-Hz frequency grid,
instead of the ~16 s of a 12-s run, whose ~0.06-Hz grid loses peaks narrower than a bin), and a
peak narrower than one frequency bin is widened to one bin so that it is never lost between
bins (the C program divides by zero for a zero width). The DC bin is left at zero so the mean
RR is exactly the requested one.
"""

from __future__ import annotations

import numpy as np


def rr_spectrum_amplitude(
    freqs: np.ndarray,
    lf: np.ndarray,
    hf: np.ndarray,
    lf_std: np.ndarray,
    hf_std: np.ndarray,
    lf_hf_ratio: np.ndarray,
) -> np.ndarray:
    """Amplitude spectrum ``sqrt(S(f))`` of the bimodal model, ``(batch, len(freqs))``.

    ``S(f) = ratio * N(f; lf, lf_std) + N(f; hf, hf_std)`` with Gaussian densities, as in the
    published model (the overall scale does not matter: the series is rescaled afterwards).
    """
    f = freqs[None, :]
    col = [np.asarray(v, dtype=np.float64)[:, None] for v in (lf, hf, lf_std, hf_std, lf_hf_ratio)]
    lf_, hf_, lfs, hfs, ratio = col
    s_lf = ratio * np.exp(-0.5 * ((f - lf_) / lfs) ** 2) / (np.sqrt(2 * np.pi) * lfs)
    s_hf = np.exp(-0.5 * ((f - hf_) / hfs) ** 2) / (np.sqrt(2 * np.pi) * hfs)
    return np.sqrt(s_lf + s_hf)


def rr_process(
    phases: np.ndarray,
    rr_mean: np.ndarray,
    rr_std: np.ndarray,
    lf: np.ndarray,
    hf: np.ndarray,
    lf_std: np.ndarray,
    hf_std: np.ndarray,
    lf_hf_ratio: np.ndarray,
    fs: float,
) -> np.ndarray:
    """RR intervals (s) sampled at ``fs`` Hz, ``(batch, n)``, from random ``phases`` ``(batch, n//2 - 1)``.

    ``n = 2 * (phases.shape[1] + 1)`` samples; frequencies ``k * fs / n``. Each series has
    mean ``rr_mean`` and standard deviation ``rr_std`` exactly.
    """
    phases = np.asarray(phases, dtype=np.float64)
    batch, n_half = phases.shape[0], phases.shape[1] + 1
    n = 2 * n_half
    df = fs / n
    freqs = np.arange(n_half + 1) * df
    widen = lambda s: np.maximum(np.asarray(s, dtype=np.float64), df)  # noqa: E731
    amp = rr_spectrum_amplitude(freqs, lf, hf, widen(lf_std), widen(hf_std), lf_hf_ratio)
    amp[:, 0] = 0.0  # no DC: the mean RR is set exactly below
    spectrum = np.zeros((batch, n_half + 1), dtype=np.complex128)
    spectrum[:, 1:n_half] = amp[:, 1:n_half] * np.exp(1j * phases)
    spectrum[:, n_half] = amp[:, n_half]  # Nyquist bin is real
    x = np.fft.irfft(spectrum, n=n, axis=1)
    sd = x.std(axis=1, ddof=1, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    return np.asarray(rr_mean, dtype=np.float64)[:, None] + x / sd * np.asarray(rr_std, dtype=np.float64)[:, None]


def rr_length(window_s: float, fs: float) -> int:
    """Number of RR samples: the power of two covering ``window_s`` seconds at ``fs`` Hz."""
    return int(2 ** np.ceil(np.log2(max(window_s * fs, 4))))
