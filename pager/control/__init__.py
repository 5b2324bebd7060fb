"""Test-rig control beside the device API: virtual clock, virtual pagers, faults, reset."""
