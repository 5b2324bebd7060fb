"""Thin aiocoap resources: decode, call the core through the engine, encode."""
