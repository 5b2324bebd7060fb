"""Emulator of a T7470-class restaurant guest-paging transmitter speaking CoAP."""
