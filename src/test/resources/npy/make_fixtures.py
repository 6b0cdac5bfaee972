#!/usr/bin/env python3
"""Writes the .npy fixtures of NpyTest with numpy itself (an independent writer).

Run once by hand from this folder (python3 make_fixtures.py); the outputs are committed, and the tests never run
python. Values are simple formulas of the flat index i so that the Java test recomputes them exactly.
"""
import numpy as np

def idx(shape):
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)

# Readable files: value = i * 0.5 - 1.25 (exact in float32) or i * 0.1 - 1 (float64, rounded on reading).
np.save("f4_2x3.npy", (idx((2, 3)) * 0.5 - 1.25).astype("<f4"))
np.save("f8_2x3x4.npy", (idx((2, 3, 4)) * 0.1 - 1).astype("<f8"))
np.save("f4_5.npy", (idx((5,)) * 0.5 - 1.25).astype("<f4"))
np.save("f4_scalar.npy", np.array(2.5, dtype="<f4"))
np.save("f4_2x3x4x5.npy", (idx((2, 3, 4, 5)) * 0.5 - 1.25).astype("<f4"))
with open("f4_v2_3x2.npy", "wb") as f:
    np.lib.format.write_array(f, (idx((3, 2)) * 0.5 - 1.25).astype("<f4"), version=(2, 0))
with open("f8_v3_4.npy", "wb") as f:
    np.lib.format.write_array(f, (idx((4,)) * 0.1 - 1).astype("<f8"), version=(3, 0))

# Files that must be rejected with a clear message.
np.save("bad_big_endian.npy", (idx((2, 3)) * 0.5).astype(">f4"))
np.save("bad_fortran.npy", np.asfortranarray((idx((2, 3)) * 0.5).astype("<f4")))
np.save("bad_int32.npy", np.arange(6, dtype="<i4").reshape(2, 3))
np.save("bad_big_endian_f2.npy", np.arange(6, dtype=">f2").reshape(2, 3))

# float16: every kind of value, as bit patterns (zeros, smallest and largest subnormal, smallest normal, 1, largest
# finite, infinities, a quiet NaN with a payload), read exactly and written back byte for byte.
F2_BITS = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x7E01]
np.save("f2_2x5.npy", np.array(F2_BITS, dtype="<u2").view("<f2").reshape(2, 5))
