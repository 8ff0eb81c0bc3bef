"""Compiled inner loops of the Gaussian beat simulator (numba), one pass over each output sample.

A beat is made as the authors' generator makes it (docs/protocol.md, "The two simulators"): five
Gaussians summed on a 1-s template sampled at 500 Hz, then stretched to the beat's length by
linear interpolation of that template. Each wave is evaluated only over its support,
``|k - k0| <= sqrt(CUT / -q)`` (beyond it ``exp(q d^2) < e^-CUT``), and without an ``exp`` per
template sample: on a uniform grid a Gaussian obeys the recurrence

    g(d + 1) = g(d) * r(d),   r(d + 1) = r(d) * exp(2q),   r(d) = exp(q (2d + 1)),

two multiplications per sample, accurate to ~1e-13 over a few hundred steps in float64. Narrow
waves (support under ``MIN_RECURRENCE`` samples, where ``r`` could overflow) take a direct ``exp``
per sample. Only the template samples a beat's part of the window reads are computed.

Every random draw is made here too (beat lengths, record and beat parameters, the block noises --
drawn while rendering, one normal per block the window shows -- and the white-noise
augmentations), per ECG, from SplitMix64 streams (Steele, Lea & Flood 2014) seeded by a hash of
(key, stream index), turned into normals by the ziggurat method of Marsaglia & Tsang (2000), 128
layers, with the value and the layer taken from disjoint bits of each 64-bit word (Doornik 2005).
An ECG's draws depend on (key, its stream index) only, never on the batch around it.

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
TWO_PI = 2.0 * math.pi
SCALE, SINE, SQUARE, WHITE = 0, 1, 2, 3  # what an augmentation does to its segment (apply_augments)


@njit(cache=True, nogil=True)
def render_records(out, first, lead, n, lo, level, slope, amp, q, k0, step, beat_samples, fs, ids,
                   key1, sd1, block1, last1, key2, sd2, block2, last2,
                   st_offset, j_point, t_centre):  # pragma: no cover - compiled
    """Fill ``out`` (records x length, float32): each record's window, beat by beat, with its block noises.

    Record ``b``'s window opens with ``lead[b]`` zero samples (the zero the authors' record starts
    with), then its beats: rows ``first[b]:first[b + 1]``, in time order, each covering ``n``
    window samples from sample ``lo`` of the beat. Beat sample ``s`` reads the beat's 1-s
    template (``fs`` samples: five Gaussians ``amp * exp(q (i - k0)^2)`` in template samples, plus
    the ST-T plateau ``st_offset`` from ``j_point`` to ``t_centre`` when not 0) at position
    ``p = s * step`` by linear interpolation, the last template sample from ``fs - 1`` on (as
    ``np.interp`` does), and adds the ramp ``level + slope * s``.

    Block noises (:func:`_add_blocks`): noise 1 of beat sample ``s`` is ``sd1 * z`` of block
    ``s // block1``; a beat's trailing partial block stays 0 and its last full block takes the
    beat's own normal ``last1`` (the beat table needs that value for the next beat's level);
    the other blocks take the next normal of record ``b``'s stream under ``key1`` (stream index
    ``ids[b]``), in time order, one per block the window shows. Noise 2 likewise.
    """
    n_rec, length = out.shape
    buf = np.empty(length)
    template = np.zeros(fs)
    for b in range(n_rec):
        pos = lead[b]
        for t in range(pos):
            buf[t] = 0.0
        state1 = stream_start(key1, ids[b])
        state2 = stream_start(key2, ids[b])
        for r in range(first[b], first[b + 1]):
            cnt, l0, f = n[r], lo[r], step[r]
            i_lo = min(int(l0 * f), fs - 1)
            i_hi = min(int((l0 + cnt - 1) * f) + 1, fs - 1)
            _fill_template(template, i_lo, i_hi, amp[r], q[r], k0[r])
            if st_offset != 0.0:
                for i in range(i_lo, i_hi + 1):
                    tau = i / fs
                    rise = 0.5 * (1.0 + math.tanh((tau - j_point[r]) / ST_RISE))
                    fall = 0.5 * (1.0 + math.tanh((tau - t_centre[r]) / ST_FALL))
                    template[i] += st_offset * (rise - fall)
            for c in range(cnt):
                p = (l0 + c) * f
                i0 = min(int(p), fs - 1)  # from the template's last sample on, its value (np.interp)
                v = template[i0] if i0 == fs - 1 else template[i0] + (p - i0) * (template[i0 + 1] - template[i0])
                buf[pos + c] = level[r] + slope[r] * (l0 + c) + v
            if sd1[r] != 0.0:
                state1 = _add_blocks(buf, pos, cnt, l0, block1[r], beat_samples[r], sd1[r], last1[r], state1)
            if sd2[r] != 0.0:
                state2 = _add_blocks(buf, pos, cnt, l0, block2[r], beat_samples[r], sd2[r], last2[r], state2)
            pos += cnt
        for t in range(length):
            out[b, t] = buf[t]


@njit(cache=True, nogil=True)
def _fill_template(template, i_lo, i_hi, amp, q, k0):  # pragma: no cover - compiled
    """``template[i_lo : i_hi + 1]`` = the sum of the five waves ``amp * exp(q (i - k0)^2)`` there."""
    for i in range(i_lo, i_hi + 1):
        template[i] = 0.0
    for j in range(amp.shape[0]):
        a, qq = amp[j], q[j]
        if a == 0.0 or qq >= 0.0:
            continue
        half = math.sqrt(CUT / -qq)
        c_lo = max(i_lo, int(math.ceil(k0[j] - half)))
        c_hi = min(i_hi, int(math.floor(k0[j] + half)))
        if c_lo > c_hi:
            continue
        if half < MIN_RECURRENCE:
            for i in range(c_lo, c_hi + 1):
                d = i - k0[j]
                template[i] += a * math.exp(qq * d * d)
            continue
        d = c_lo - k0[j]
        g = a * math.exp(qq * d * d)
        ratio = math.exp(qq * (2.0 * d + 1.0))
        grow = math.exp(2.0 * qq)
        for i in range(c_lo, c_hi + 1):
            template[i] += g
            g *= ratio
            ratio *= grow


@njit(cache=True, nogil=True)
def _add_blocks(buf, pos, cnt, l0, width, n_beat, sd, z_last, state):  # pragma: no cover - compiled
    """Add one block noise to ``buf[pos : pos + cnt]``, which holds beat samples ``l0 .. l0 + cnt - 1``.

    Blocks of ``width`` samples count from the beat's first sample; only the ``n_beat // width``
    full blocks get noise (the trailing partial block stays 0, as the authors pad it with zeros),
    ``sd * z`` with ``z`` the stream's next normal, except the last full block, which takes
    ``z_last``. Returns the stream's next state.
    """
    n_full = n_beat // width
    limit = n_full * width
    c, k = 0, l0
    while c < cnt and k < limit:
        block = k // width
        if block == n_full - 1:
            z = z_last
        else:
            state, z = _normal(state)
        stop = min(cnt, c + (block + 1) * width - k)
        v = sd * z
        for i in range(pos + c, pos + stop):
            buf[i] += v
        k += stop - c
        c = stop
    return state


@njit(cache=True, nogil=True)
def apply_augments(x, n, operation, lo, seg, value, step, key, ids):  # pragma: no cover - compiled
    """Every record's augmentations in slot order, in place on ``x`` (records x length, float32).

    Slot ``a`` of record ``r`` acts on samples ``lo .. lo + seg - 1``, ``i`` counting from the
    segment's start: ``SCALE`` multiplies them by ``value``; ``SINE`` adds ``value * sin(i *
    step)``; ``SQUARE`` adds ``value`` times scipy's ``square(i * step)`` (+1 on the first half of
    each period, -1 on the second); ``WHITE`` adds ``value`` times the next normals of the
    record's stream under ``key`` (stream index ``ids[r]``).
    """
    for r in range(x.shape[0]):
        state = stream_start(key, ids[r])
        for a in range(n[r]):
            o, start, m, v, w = operation[r, a], lo[r, a], seg[r, a], value[r, a], step[r, a]
            if o == SCALE:
                for i in range(start, start + m):
                    x[r, i] = np.float32(x[r, i] * v)
            elif o == WHITE:
                for i in range(start, start + m):
                    state, z = _normal(state)
                    x[r, i] += np.float32(v * z)
            elif o == SQUARE:
                for i in range(m):
                    x[r, start + i] += np.float32(v if (i * w) % TWO_PI < math.pi else -v)
            else:  # SINE, by the rotation recurrence of sin(i w)
                s, c = 0.0, 1.0
                sw, cw = math.sin(w), math.cos(w)
                for i in range(start, start + m):
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
def uniforms(key, ids, n):  # pragma: no cover - compiled
    """``(len(ids), n)`` uniforms in (0, 1), row i from stream index ``ids[i]``'s own stream."""
    out = np.empty((ids.shape[0], n))
    for b in range(ids.shape[0]):
        state = stream_start(key, ids[b])
        for t in range(n):
            state, out[b, t] = _unit(state)
    return out


@njit(cache=True, nogil=True)
def record_draws(key, ids, n_normal, n_uniform):  # pragma: no cover - compiled
    """Each record's ``n_normal`` normals then ``n_uniform`` uniforms, in that order from its stream."""
    batch = ids.shape[0]
    normal = np.empty((batch, n_normal))
    unit = np.empty((batch, n_uniform))
    for b in range(batch):
        state = stream_start(key, ids[b])
        for j in range(n_normal):
            state, normal[b, j] = _normal(state)
        for j in range(n_uniform):
            state, unit[b, j] = _unit(state)
    return normal, unit


@njit(cache=True, nogil=True)
def beat_draws(key, ids, counts, k, n_beat):  # pragma: no cover - compiled
    """``(batch, k, n_beat)`` normals: ``n_beat`` per beat for the first ``counts[b]`` beats of
    record ``b`` (in order, from its stream), zeros after them."""
    batch = ids.shape[0]
    out = np.zeros((batch, k, n_beat))
    for b in range(batch):
        state = stream_start(key, ids[b])
        for j in range(counts[b]):
            for m in range(n_beat):
                state, out[b, j, m] = _normal(state)
    return out


@njit(cache=True, nogil=True)
def _walk_beats(state, base, sd_record, sd_beat, low, high, fs, needed, max_draws, lengths,
                samples):  # pragma: no cover - compiled
    """One record's beats from its length stream: (record length, beats kept; -1 past ``max_draws``).

    The first normal sets the record's length ``base + sd_record * z``; each next one a beat's,
    ``record + sd_beat * z`` clipped to ``[low, high]``, of ``ceil(fs / (1 / length))`` samples
    (the length of the authors' ``np.arange(0, fs, 1 / length)``), or none when the length is
    not positive: such a beat is skipped, as the authors' empty beat changes nothing. Beats are
    kept until the record, counting its leading zero sample, passes ``needed`` samples, plus one
    (a premature beat may shorten the one before it). ``lengths``/``samples`` rows receive the
    kept beats as far as they reach (empty rows: count only).
    """
    state, z = _normal(state)
    record = base + sd_record * z
    end, kept, passed = 1, 0, False
    for _ in range(max_draws):
        state, z = _normal(state)
        length = min(max(record + sd_beat * z, low), high)
        if length <= 0.0:
            continue
        count = int(math.ceil(fs / (1.0 / length)))
        if kept < lengths.shape[0]:
            lengths[kept] = length
            samples[kept] = count
        kept += 1
        if passed:
            return record, kept
        end += count
        passed = end > needed
    return record, -1


@njit(cache=True, nogil=True)
def beat_lengths(key, indices, base, sd_record, sd_beat, low, high, fs, needed, max_draws, stride,
                 max_attempts):  # pragma: no cover - compiled
    """Every record's beat lengths, from its own length stream under ``key`` (:func:`_walk_beats`).

    A record whose walk passes ``max_draws`` beat draws is drawn again from fresh streams: its
    stream index moves on by ``stride`` (the authors' generator drops a record that takes over
    5 s, which is what redrawing does to the distribution). Returns the attempts (stream index =
    ``index + attempt * stride``), beats per record, record lengths (s), and ``(batch, max
    beats)`` tables of beat lengths (s) and samples, zero-padded. After ``max_attempts`` failed
    walks a record's attempt is ``max_attempts`` and the tables are left empty (the caller raises).
    """
    batch = indices.shape[0]
    attempts = np.zeros(batch, dtype=np.int64)
    counts = np.zeros(batch, dtype=np.int64)
    none, none_i = np.empty(0), np.empty(0, dtype=np.int64)
    for b in range(batch):
        while attempts[b] < max_attempts:
            state = stream_start(key, indices[b] + attempts[b] * stride)
            _, kept = _walk_beats(state, base, sd_record, sd_beat, low, high, fs, needed, max_draws, none, none_i)
            if kept >= 0:
                counts[b] = kept
                break
            attempts[b] += 1
        if attempts[b] == max_attempts:
            return attempts, counts, np.zeros(batch), np.zeros((batch, 0)), np.zeros((batch, 0), dtype=np.int64)
    k = counts.max() if batch else 0
    record = np.empty(batch)
    lengths = np.zeros((batch, k))
    samples = np.zeros((batch, k), dtype=np.int64)
    for b in range(batch):
        state = stream_start(key, indices[b] + attempts[b] * stride)
        record[b], _ = _walk_beats(state, base, sd_record, sd_beat, low, high, fs, needed, max_draws,
                                   lengths[b], samples[b])
    return attempts, counts, record, lengths, samples
