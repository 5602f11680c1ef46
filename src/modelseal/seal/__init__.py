"""Seals: the signed certificate of a model release, its bundle, and the certify/verify
pipelines that tie the release, scanner, audit, certificate authority and log together.

A seal is a DSSE envelope of an in-toto Statement v1 whose subject is the release's root digest
and whose predicate holds the manifest, the evidence summaries (each with the digest of its full
report), the issuer, the serial and the validity window. The *bundle* adds what a verifier needs
offline: the issuer chain, the log inclusion proof and the signed checkpoint.
"""
