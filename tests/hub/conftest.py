"""Hub tests: a real LocalHub on its own loopback address and data directory, reached through
the unmodified azure-iot-hub and azure-iot-device SDKs over TLS. Nothing is faked."""
