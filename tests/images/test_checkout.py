"""The demo app's image: the lab's checkout upstream on the port and host its flags give, as a user not root."""

from __future__ import annotations

from tests.images.buildah import Container, free_port, get, process_uid, wait_for


def test_by_default_it_is_v1_on_every_address_port_8080(checkout: Container) -> None:
    config = checkout.config()
    assert config["Entrypoint"] == ["python3", "-m", "switchman.lab.local.upstream_main"]
    assert config["Cmd"] == ["checkout", "v1", "--host", "0.0.0.0", "--port", "8080"]
    assert config["User"] == "10001:10001"


def test_it_answers_with_its_version_on_its_port(checkout: Container) -> None:
    port = free_port()
    # as in a pod: on loopback only, where the sidecar reaches it
    running = checkout.start([*checkout.config()["Entrypoint"], "checkout", "v2", "--host", "127.0.0.1",
                              "--port", str(port)])
    try:
        status, headers, body = wait_for(lambda: get(f"http://127.0.0.1:{port}/"), 60, "the checkout app answers")
        assert (status, body) == (200, "checkout v2\n")
        assert headers["x-upstream-version"] == "v2"
        assert process_uid(running.pid) == 10001
    finally:
        code, output = running.stop()
    assert code == 0, output
