"""Test doubles that run for real: servers that speak the protocols our backends use,
on 127.0.0.1, for the tests and the benchmarks (``edgellm.testing.openai_server``)."""
