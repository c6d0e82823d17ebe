"""Sensor drivers: raw bus traffic in, the core's samples out."""
