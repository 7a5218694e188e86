"""One module per Chroma target: ``embedded`` (PersistentClient) and ``server`` (HttpClient)."""
