"""The development secret key: generated once into DATA_DIR, wherever that folder is."""

import logging

from config import Settings


def test_the_secret_key_is_generated_into_a_data_dir_that_does_not_exist_yet(tmp_path, caplog):
    data_dir = tmp_path / "not" / "yet"

    with caplog.at_level(logging.WARNING, logger="config"):
        settings = Settings(_env_file=None, secret_key=None, data_dir=data_dir)

    key_file = data_dir / "secret_key"
    assert key_file.read_text() == settings.jwt_secret
    message = f"SECRET_KEY is not set: generated one and stored it in {key_file}"
    assert message in caplog.messages  # where to find it; never the key itself


def test_the_generated_secret_key_is_48_random_bytes(tmp_path):
    keys = {
        Settings(_env_file=None, secret_key=None, data_dir=tmp_path / str(n)).jwt_secret
        for n in range(2)
    }
    assert len(keys) == 2
    assert {len(key) for key in keys} == {64}  # 48 bytes in URL-safe base64: 384 bits
