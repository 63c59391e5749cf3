"""Simulated particles with a known answer, and scoring against that answer."""
