"""`python -m oasisgan.accel`: the fingerprints of the reference code the fast paths mirror."""
from . import VERIFIED_NN, nn_fingerprint
from .losses import VERIFIED_LOSSES, losses_fingerprint

for name, fp, recorded in (("VERIFIED_NN", nn_fingerprint(), VERIFIED_NN),
                           ("VERIFIED_LOSSES", losses_fingerprint(), VERIFIED_LOSSES)):
    print(f"{name} = {fp!r}" + ("" if fp == recorded else "   (differs from the recorded value)"))
