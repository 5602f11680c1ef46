"""The guarded gateway: an OpenAI-compatible proxy that serves only a verified model."""
