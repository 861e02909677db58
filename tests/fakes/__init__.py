"""Local fakes and emulators of the services keepwarm talks to (loopback only)."""
