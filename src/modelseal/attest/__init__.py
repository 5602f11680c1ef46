"""Attestations: in-toto Statement v1, DSSE envelopes, signers, and OpenSSF model-signing interop.

Knows how to make, sign, parse and check signed statements; never decides whom to trust (that is
:mod:`modelseal.ca` and the caller's trust store).
"""
