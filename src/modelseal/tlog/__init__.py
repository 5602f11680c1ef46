"""The transparency log: RFC 9162 Merkle tree, storage, C2SP checkpoints, proofs, HTTP API,
monitor and witness. Knows nothing about audits, scans or seals: entries are opaque bytes."""
