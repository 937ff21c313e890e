"""Defaults shared by the improviser, the command line and the presets, in one place.

Kept free of imports so the command line can show them without loading numpy or pydantic.
"""

DEFAULT_THRESHOLD = 0.35
"""Note probability above which a decoded feature is on.

Measured with the shipped model on the shipped queries (README, "Choices"): at 0.35 the
answers' note density matches the queries' (40 against 39.5 sounding cells a bar at 256
bits; 0.5 gave 33), agreement with the query rises with the bit budget on all ten queries
(20 seeds; at 0.5 one query dipped from 0 to 16 bits), and one zero-bit texture of ten is
silent instead of two. The held-out chorales' reconstruction moves from note F1 0.944 at
0.5 to 0.935. The paper's reference code used 0.7, which leaves the zero-bit end silent.
"""
