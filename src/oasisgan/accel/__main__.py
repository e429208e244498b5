"""`python -m oasisgan.accel`: the fingerprint of the reference methods the fast path mirrors."""
from . import VERIFIED_NN, nn_fingerprint

fp = nn_fingerprint()
print(f"VERIFIED_NN = {fp!r}" + ("" if fp == VERIFIED_NN else "   (differs from the recorded value)"))
