"""Several independent emulated transmitters in one process (`serve --fleet N`).

Each gets its own CoAP port, control port, LRSN port, store and system id, derived from the base
configuration by consecutive numbers, or taken from a `[[transmitter]]` table in the
configuration file, whose keys override the base for that transmitter.
"""

from pathlib import Path

from pager.config import Config, ConfigError


def fleet_configs(base: Config, count: int | None) -> list[Config]:
    tables = base.transmitter
    if count is not None and count < 1:
        raise ConfigError(f"--fleet {count}: a fleet has at least 1 transmitter")
    if count is None:
        count = max(1, len(tables))
    if tables and len(tables) != count:
        raise ConfigError(
            f"--fleet {count} but the configuration lists {len(tables)} [[transmitter]] tables"
        )
    if count == 1 and not tables:
        return [base]
    db = Path(base.db)
    configs = []
    for i in range(count):
        derived = {
            "port": base.port + i if base.port else 0,
            "control_port": base.control_port + i if base.control_port else 0,
            "lrsn_port": base.lrsn_port + i if base.lrsn_port else 0,
            "db": str(db.with_name(f"{db.stem}-{i + 1}{db.suffix}")),
            "system_id": i + 1 if base.system_id is None else base.system_id,
            "transmitter": [],
        }
        values = {**base.model_dump(), **derived, **(tables[i] if tables else {})}
        try:
            configs.append(Config(**values))
        except ValueError as e:
            raise ConfigError(f"invalid [[transmitter]] {i + 1}: {e}") from e
    return configs
