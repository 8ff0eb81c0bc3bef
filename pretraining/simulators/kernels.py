"""Compiled inner loops of the Gaussian beat simulator (numba), one pass over each output sample.

numpy evaluated every wave at every sample of its beat (five ``exp`` passes per sample, most of
them over samples where the Gaussian is below 1e-8 of its peak). Here each wave is evaluated only
over its support, ``|k - k0| <= sqrt(CUT / -q)`` (beyond it ``exp(q d^2) < e^-CUT``), and without
an ``exp`` per sample: on a uniform grid a Gaussian obeys the recurrence

    g(d + 1) = g(d) * r(d),   r(d + 1) = r(d) * exp(2q),   r(d) = exp(q (2d + 1)),

two multiplications per sample, accurate to ~1e-13 over a few hundred steps in float64. Narrow
waves (support under ``MIN_RECURRENCE`` samples, where ``r`` could overflow) take a direct ``exp``
per sample. Sine and square augmentations use the matching rotation recurrence for ``sin``.

Every random draw is made here too (record and beat parameters, the block noises -- drawn while
rendering, one normal per block the window shows -- and the white-noise augmentation), per ECG,
from a SplitMix64 stream (Steele, Lea & Flood 2014) seeded by a hash of (key, ECG index), turned
into normals by the ziggurat method of Marsaglia & Tsang (2000), 128 layers, with the value and
the layer taken from disjoint bits of each 64-bit word (Doornik 2005).
ECG i's draws depend on (key, i) only. This replaced a per-ECG Python loop over numpy Philox
generators, which took over a third of the simulator's time.

All arithmetic is float64; results are stored as float32. ``cache=True`` keeps the compiled code
on disk (numba's cache, beside this file or in the user cache when that is read-only), so only
the first import on a machine pays the compile.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_U64 = np.uint64
GAMMA = _U64(0x9E3779B97F4A7C15)
MIX1, MIX2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
S27, S30, S31 = _U64(27), _U64(30), _U64(31)
S11, LAYER_MASK, SIGNED_SHIFT = _U64(11), _U64(127), np.int64(11)
TO_UNIT, TO_SIGNED = 2.0**-53, 2.0**-52


def _ziggurat_tables(n: int = 128, r: float = 3.442619855899, v: float = 9.91256303526217e-3):
    """Layer edges ``x`` (``x[0] = v / f(r)`` is the base strip's width, ``x[n] = 0``) and ``f(x)``."""
    x = np.zeros(n + 1)
    x[0], x[1] = v / math.exp(-0.5 * r * r), r
    for i in range(1, n - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(v / x[i] + math.exp(-0.5 * x[i] * x[i])))
    return x, np.exp(-0.5 * x * x)


ZIG_X, ZIG_F = _ziggurat_tables()
ZIG_R = 3.442619855899
CUT = 18.0  # a wave is dropped where it is below exp(-18) = 1.5e-8 of its peak
MIN_RECURRENCE = 4.0  # half-support (samples) below which each sample gets its own exp
ST_RISE, ST_FALL = 0.015, 0.03  # s: how sharply the ST-T plateau starts at the J point and ends after T


@njit(cache=True, nogil=True)
def render_records(out, first, n, lo, level, slope, amp, q, k0, indices, key1, sd1, block1, key2, sd2, block2,
                   st_offset, scale, j_point, t_centre):  # pragma: no cover - compiled
    """Fill ``out`` (records x length, float32): each record's beats in order, with their block noises.

    Beats are rows ``first[b]:first[b + 1]``, in time order, each covering ``n`` window samples
    from sample ``lo`` of the beat: a ramp ``level + slope * k`` plus five Gaussians
    ``amp * exp(q (k - k0)^2)`` in sample units. ``st_offset != 0`` adds the smooth ST-T plateau
    from ``j_point`` to ``t_centre`` (template seconds, ``tau = k * scale``).

    Block noises, per beat: beat sample ``k`` gets ``sd1 * z[k // block1]`` (blocks counted from
    the beat's first sample, so a beat's last block may be partial), ``z`` standard normals drawn
    in time order -- one per block the window shows -- from record ``b``'s stream under ``key1``
    (ECG ``indices[b]``); the same for noise 2 under ``key2``. ``sd == 0`` draws nothing.
    """
    n_rec, length = out.shape
    buf = np.empty(length)
    for b in range(n_rec):
        pos = 0
        state1 = stream_start(key1, indices[b])
        state2 = stream_start(key2, indices[b])
        for r in range(first[b], first[b + 1]):
            cnt, l0 = n[r], lo[r]
            for c in range(cnt):
                buf[pos + c] = level[r] + slope[r] * (l0 + c)
            for j in range(5):
                a, qq = amp[r, j], q[r, j]
                if a == 0.0 or qq >= 0.0:
                    continue
                half = math.sqrt(CUT / -qq)
                centre = k0[r, j] - l0  # in window columns of this beat
                c_lo = max(0, int(math.ceil(centre - half)))
                c_hi = min(cnt - 1, int(math.floor(centre + half)))
                if c_lo > c_hi:
                    continue
                if half < MIN_RECURRENCE:
                    for c in range(c_lo, c_hi + 1):
                        d = c - centre
                        buf[pos + c] += a * math.exp(qq * d * d)
                    continue
                d = c_lo - centre
                g = a * math.exp(qq * d * d)
                ratio = math.exp(qq * (2.0 * d + 1.0))
                step = math.exp(2.0 * qq)
                for c in range(c_lo, c_hi + 1):
                    buf[pos + c] += g
                    g *= ratio
                    ratio *= step
            if st_offset != 0.0:
                for c in range(cnt):
                    tau = (l0 + c) * scale[r]
                    rise = 0.5 * (1.0 + math.tanh((tau - j_point[r]) / ST_RISE))
                    fall = 0.5 * (1.0 + math.tanh((tau - t_centre[r]) / ST_FALL))
                    buf[pos + c] += st_offset * (rise - fall)
            s1, s2, w1, w2 = sd1[r], sd2[r], block1[r], block2[r]
            if s1 != 0.0 and s2 != 0.0:  # both noises in one pass (the usual case)
                k1, k2 = l0 % w1, l0 % w2  # the window may open mid-block
                state1, z1 = _normal(state1)
                state2, z2 = _normal(state2)
                v = s1 * z1 + s2 * z2
                last = cnt - 1
                for c in range(cnt):
                    buf[pos + c] += v
                    k1 += 1
                    k2 += 1
                    if (k1 == w1 or k2 == w2) and c < last:
                        if k1 == w1:
                            k1 = 0
                            state1, z1 = _normal(state1)
                        if k2 == w2:
                            k2 = 0
                            state2, z2 = _normal(state2)
                        v = s1 * z1 + s2 * z2
            elif s1 != 0.0:
                state1 = _add_blocks(buf, pos, cnt, l0, w1, s1, state1)
            elif s2 != 0.0:
                state2 = _add_blocks(buf, pos, cnt, l0, w2, s2, state2)
            pos += cnt
        for t in range(length):
            out[b, t] = buf[t]


@njit(cache=True, nogil=True, inline="always")
def _add_blocks(buf, pos, cnt, l0, width, sd, state):  # pragma: no cover - compiled
    """Add ``sd`` times one normal per ``width``-sample block (counted from beat sample 0) to
    ``buf[pos : pos + cnt]``, which holds beat samples ``l0 .. l0 + cnt - 1``; returns the next state."""
    c = 0
    inside = l0 % width  # the window may open mid-block
    while c < cnt:
        state, z = _normal(state)
        v = sd * z
        stop = min(cnt, c + width - inside)
        for i in range(pos + c, pos + stop):
            buf[i] += v
        c = stop
        inside = 0
    return state


@njit(cache=True, nogil=True)
def apply_augments(x, n, kind, lo, seg, value, freq, phase, key, indices, fs):  # pragma: no cover - compiled
    """Every record's augmentations in slot order, in place on ``x`` (records x length, float32).

    kind 0 scales the segment by ``value``; 1 adds ``value * sin(2 pi freq t + phase)``; 2 adds its
    sign (a rectangular wave); 3 adds ``value`` times white noise, the record's next ``seg``
    normals from its stream under ``key``.
    """
    for r in range(x.shape[0]):
        state = stream_start(key, indices[r])
        for a in range(n[r]):
            k, start, m, v = kind[r, a], lo[r, a], seg[r, a], value[r, a]
            if k == 0:
                for i in range(start, start + m):
                    x[r, i] = np.float32(x[r, i] * v)
            elif k == 3:
                for i in range(start, start + m):
                    state, z = _normal(state)
                    x[r, i] += np.float32(v * z)
            else:
                w = 2.0 * math.pi * freq[r, a] / fs
                s, c = math.sin(phase[r, a]), math.cos(phase[r, a])
                sw, cw = math.sin(w), math.cos(w)
                for i in range(start, start + m):
                    if k == 2:
                        x[r, i] += np.float32(v if s > 0.0 else (-v if s < 0.0 else 0.0))
                    else:
                        x[r, i] += np.float32(v * s)
                    s, c = s * cw + c * sw, c * cw - s * sw


@njit(cache=True, nogil=True, inline="always")
def _mix(z):  # pragma: no cover - compiled
    """SplitMix64's finaliser: a bijective 64-bit hash."""
    z = (z ^ (z >> S30)) * MIX1
    z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


@njit(cache=True, nogil=True, inline="always")
def _unit(state):  # pragma: no cover - compiled
    """(next state, a uniform in (0, 1))."""
    state += GAMMA
    return state, ((_mix(state) >> S11) + 0.5) * TO_UNIT


@njit(cache=True, nogil=True, inline="always")
def _normal(state):  # pragma: no cover - compiled
    """(next state, one standard normal): the ziggurat's fast path, one word and no ``exp`` (98.8%).

    The layer comes from the word's low 7 bits; a signed uniform in [-1, 1) from its top 53 bits
    (an arithmetic shift, so the sign needs no branch).
    """
    state, layer, x = _candidate(state)
    if abs(x) < ZIG_X[layer + 1]:
        return state, x
    return _normal_slow(state, layer, x)


@njit(cache=True, nogil=True, inline="always")
def _candidate(state):  # pragma: no cover - compiled
    """(next state, a layer, a point uniform in that layer's rectangle)."""
    state += GAMMA
    u = _mix(state)
    layer = np.int64(u & LAYER_MASK)
    return state, layer, np.float64(np.int64(u) >> SIGNED_SHIFT) * TO_SIGNED * ZIG_X[layer]


@njit(cache=True, nogil=True)
def _normal_slow(state, layer, x):  # pragma: no cover - compiled
    """The ziggurat's rare paths: the tail beyond R (Marsaglia's method) and the wedges."""
    while True:
        if layer == 0:
            while True:
                state, u1 = _unit(state)
                state, u2 = _unit(state)
                a = -math.log(u1) / ZIG_R
                if -2.0 * math.log(u2) > a * a:
                    return state, (ZIG_R + a) if x > 0 else -(ZIG_R + a)
        state, u1 = _unit(state)
        if ZIG_F[layer] + u1 * (ZIG_F[layer + 1] - ZIG_F[layer]) < math.exp(-0.5 * x * x):
            return state, x
        state, layer, x = _candidate(state)
        if abs(x) < ZIG_X[layer + 1]:
            return state, x


@njit(cache=True, nogil=True)
def stream_start(key, index):  # pragma: no cover - compiled
    """The SplitMix64 state where ECG ``index``'s stream under ``key`` begins."""
    return _mix(key ^ _mix(_U64(index) * GAMMA + GAMMA))


@njit(cache=True, nogil=True)
def normals(key, indices, n):  # pragma: no cover - compiled
    """``(len(indices), n)`` float32 standard normals, row i from ECG ``indices[i]``'s own stream."""
    out = np.empty((indices.shape[0], n), dtype=np.float32)
    for b in range(indices.shape[0]):
        state = stream_start(key, indices[b])
        for t in range(n):
            state, z = _normal(state)
            out[b, t] = z
    return out


@njit(cache=True, nogil=True)
def draw_parameters(key, indices, n_record, k_max, n_beat, n_uniform, with_pvc, length_base, length_sd_record,
                    length_sd_beat, length_min, length_max, fs, needed):  # pragma: no cover - compiled
    """Each ECG's parameter draws, in this order from its own stream under ``key``.

    1. ``n_record + k_max`` normals: the record-level draws (column 15 is the beat length's),
       then one beat-length jitter per possible beat;
    2. ``n_beat`` normals for each beat the record needs: beats until their lengths (clipped,
       in whole samples) pass ``needed`` samples, plus two -- the rest of the row stays 0;
    3. ``n_uniform`` uniforms; then, if ``with_pvc``, ``k_max`` uniforms (1.0 otherwise).

    Returns (normals, beat lengths in seconds (clipped), shapes, uniforms, pvc uniforms, beats
    drawn per ECG).
    """
    batch = indices.shape[0]
    normals = np.empty((batch, n_record + k_max))
    lengths = np.empty((batch, k_max))
    shapes = np.zeros((batch, k_max, n_beat))
    uniforms = np.empty((batch, n_uniform))
    pvc_u = np.ones((batch, k_max))
    n_drawn = np.empty(batch, dtype=np.int64)
    for b in range(batch):
        state = stream_start(key, indices[b])
        for j in range(n_record + k_max):
            state, normals[b, j] = _normal(state)
        record_length = length_base + length_sd_record * normals[b, 15]
        end, n_draw = 0.0, k_max
        for j in range(k_max):
            lengths[b, j] = min(max(record_length + length_sd_beat * normals[b, n_record + j], length_min), length_max)
            end += math.ceil(lengths[b, j] * fs)
            if end > needed and n_draw == k_max:
                n_draw = min(j + 2, k_max)
        n_drawn[b] = n_draw
        for j in range(n_draw):
            for m in range(n_beat):
                state, shapes[b, j, m] = _normal(state)
        for j in range(n_uniform):
            state, uniforms[b, j] = _unit(state)
        if with_pvc:
            for j in range(k_max):
                state, pvc_u[b, j] = _unit(state)
    return normals, lengths, shapes, uniforms, pvc_u, n_drawn
