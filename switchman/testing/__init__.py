"""Builders shared by tests, benchmarks and the lab, and fakes of what cannot run here."""
