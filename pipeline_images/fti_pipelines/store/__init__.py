"""The versioned stateful layer: artifact store, offline feature store, online store, quarantine."""
