"""The ``[server]`` settings of the broker backplanes, and picking a backplane from its URL."""

from __future__ import annotations

import pytest

from vws.backplane import BackplaneOptions, MemoryBackplane, create
from vws.backplane.nats import NatsBackplane
from vws.backplane.redis import RedisBackplane
from vws.config import parse_config
from vws.errors import ConfigError


def parse(text: str, **environ: str):
    return parse_config(text, "routes.toml", environ=environ)


def test_defaults_are_the_backplane_options_defaults():
    server = parse("").server
    assert server.backplane == "memory://"
    assert server.backplane_options() == BackplaneOptions()
    assert BackplaneOptions().channel_prefix == "vws"
    assert BackplaneOptions().publish_queue == 10000
    assert BackplaneOptions().publish_timeout == 5.0
    assert BackplaneOptions().node_timeout == 10.0
    assert BackplaneOptions().reconnect_max_delay == 2.0


def test_settings_reach_the_backplane():
    server = parse(
        """
[server]
backplane = "redis://127.0.0.1:6379/2"
channel_prefix = "shop-eu_1"
publish_queue = 50
publish_timeout = 0.5
node_timeout = 3
reconnect_max_delay = 7.5
"""
    ).server
    assert server.backplane_options() == BackplaneOptions(
        channel_prefix="shop-eu_1",
        publish_queue=50,
        publish_timeout=0.5,
        node_timeout=3.0,
        reconnect_max_delay=7.5,
    )


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('channel_prefix = "a:b"', "server.channel_prefix"),
        ('channel_prefix = "a.b"', "server.channel_prefix"),
        ('channel_prefix = ""', "server.channel_prefix"),
        ("publish_queue = 0", "server.publish_queue"),
        ("publish_timeout = 0", "server.publish_timeout"),
        ("node_timeout = -1", "server.node_timeout"),
        ("reconnect_max_delay = 0", "server.reconnect_max_delay"),
    ],
)
def test_bad_settings_are_refused_with_their_line(line, key):
    with pytest.raises(ConfigError) as error:
        parse(f"[server]\n{line}\n")
    (issue,) = error.value.issues
    assert issue.line == 2 and issue.key == key


def test_broker_urls_are_accepted_from_the_file_and_the_environment():
    assert parse('[server]\nbackplane = "nats://127.0.0.1:4222"').server.backplane.startswith(
        "nats"
    )
    assert parse("", VWS_BACKPLANE="redis://h:1/0").server.backplane == "redis://h:1/0"
    with pytest.raises(ConfigError) as error:
        parse('[server]\nbackplane = "kafka://h:9092"')
    assert "expected memory://, nats://, redis://" in str(error.value)


def test_create_picks_the_implementation_from_the_scheme():
    assert isinstance(create("memory://", "n"), MemoryBackplane)
    assert isinstance(create("redis://127.0.0.1:6379/0", "n"), RedisBackplane)
    assert isinstance(create("nats://127.0.0.1:4222", "n"), NatsBackplane)
    with pytest.raises(ValueError, match="expected memory://, redis:// or nats://"):
        create("amqp://h", "n")


def test_a_broker_whose_client_is_not_installed_is_a_located_error(monkeypatch) -> None:
    import vws.backplane

    monkeypatch.setattr(vws.backplane, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as caught:
        parse_config(
            '[server]\nbackplane = "redis://127.0.0.1:6379/0"\n', "routes.toml", environ={}
        )
    assert [str(issue) for issue in caught.value.issues] == [
        "routes.toml:2: server.backplane: redis:// needs the redis client: pip install 'vws[redis]'"
    ]
    assert vws.backplane.missing_client("nats://127.0.0.1:4222") == (
        "nats:// needs the nats client: pip install 'vws[nats]'"
    )
    assert vws.backplane.missing_client("memory://") is None


def test_a_file_backplane_overridden_by_the_environment_needs_no_client(monkeypatch) -> None:
    import vws.backplane

    monkeypatch.setattr(vws.backplane, "find_spec", lambda name: None)
    text = '[server]\nbackplane = "redis://127.0.0.1:6379/0"\n'
    config = parse_config(text, "routes.toml", environ={"VWS_BACKPLANE": "memory://"})
    assert config.server.backplane == "memory://"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "routes.toml", environ={"VWS_BACKPLANE": "nats://127.0.0.1:4222"})
    assert [str(issue) for issue in caught.value.issues] == [
        "environment: VWS_BACKPLANE: nats:// needs the nats client: pip install 'vws[nats]'"
    ]
