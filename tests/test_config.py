"""The TOML configuration: the example documents every key with its default."""

import re
import tomllib

import pytest

from pager.config import Config, ConfigError, load
from tests.conftest import REPO


def test_example_documents_every_key_with_its_default():
    text = (REPO / "config.example.toml").read_text()
    example = tomllib.loads(text)
    commented = set(re.findall(r"^# (\w+) = ", text, re.MULTILINE)) - {"port", "db"}
    assert set(example) | commented == set(Config.model_fields)
    assert load(REPO / "config.example.toml") == Config()


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('port = 6000\nstrict = true\ndevice_name = "T9"\n')
    config = load(path, port=7000, host=None)
    assert (config.port, config.strict, config.device_name, config.host) == (7000, True, "T9", "::")


@pytest.mark.parametrize(
    "text",
    [
        'colour = "red"\n',
        'port = "5683"\n',
        "port = 70000\n",
        "number_min = 10\nnumber_max = 5\n",
        'log_level = "LOUD"\n',
        "port = \n",
        'lrsn_user = "admin"\n',
        "lrsn_port = -1\n",
    ],
)
def test_bad_config_is_refused(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load(path)
