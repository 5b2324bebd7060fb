"""Configuration: defaults, the TOML file, then command-line flags (spec §1, §7, §9).

`config.example.toml` at the top of the repository documents every key with its default.
"""

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(Exception):
    pass


class Config(BaseModel):
    """Everything the emulator process is started with (file and flags), fixed while it runs.

    The domain sees only its part of it, `domain.operations.DeviceRules`; what a client
    changes is device state (`domain.model.Device` and its `Settings`), kept in the store.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    host: str = "::"
    port: int = Field(5683, ge=0, le=65535)
    db: str = "pager.db"
    device_name: str = "T7470"
    firmware_version: str = "8.4.100.43"
    number_min: int = Field(0, ge=0)
    number_max: int = Field(4095, ge=0)
    staff_pagers: list[int] = []
    history_limit: int = Field(100_000, ge=1)
    strict: bool = False
    auto_page_at_goal: bool = False
    ping_interval: float = Field(30.0, gt=0)
    max_observers: int = Field(1000, ge=1)
    observer_queue_limit: int = Field(1000, ge=1)
    max_block_transfers: int = Field(1000, ge=1)
    max_block_transfer_bytes: int = Field(64 * 2**20, ge=0)
    amplification_protection: bool = False
    dedup_max_entries: int = Field(20_000, ge=100)
    journal: bool = True
    journal_limit: int = Field(10_000, ge=1)
    journal_bytes: int = Field(16 * 2**20, ge=2**17)
    log_level: str = "INFO"
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    system_id: int | None = Field(None, ge=0, le=255)
    control: bool = True
    control_host: str = "127.0.0.1"
    control_port: int = Field(7470, ge=0, le=65535)
    control_token: str | None = Field(None, min_length=16)
    lrsn: bool = True
    lrsn_host: str | None = None  # None: the CoAP host
    lrsn_port: int = Field(3700, ge=0, le=65535)
    lrsn_user: str | None = Field(None, min_length=1)
    lrsn_password: str | None = Field(None, min_length=1)
    lrsn_max_clients: int = Field(16, ge=1, le=10_000)
    lrsn_heartbeat_interval: float = Field(60.0, gt=0, le=86400)
    lrsn_serial: str = Field("20384", min_length=1, max_length=32)
    transmitter: list[dict[str, Any]] = []  # [[transmitter]] tables: one emulated transmitter each

    @model_validator(mode="after")
    def _ranges(self) -> "Config":
        if self.number_min > self.number_max:
            raise ValueError("number_min must not exceed number_max")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        if (self.lrsn_user is None) != (self.lrsn_password is None):
            raise ValueError("lrsn_user and lrsn_password are set together, or neither")
        return self


def load(path: str | Path | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file at `path`, then the non-None `overrides`."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values.update(tomllib.loads(Path(path).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Config(**values)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from e
