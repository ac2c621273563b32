"""Measuring a compiled candidate: latency on the device, memory from the artifact."""
