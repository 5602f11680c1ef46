"""The certificate authority: keys at rest, the root and issuing certificates, revocation lists,
trust stores and the ``$MODELSEAL_HOME`` layout. Never stores a private key unencrypted."""
