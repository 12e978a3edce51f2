"""The control plane's image: non-root, built from this checkout's commit, and its default command serves."""

from __future__ import annotations

import subprocess

import switchman
from switchman.version import describe
from tests.images.buildah import ROOT, Container, free_port, get, process_uid, wait_for


def test_it_runs_as_a_user_that_is_not_root(control_plane: Container) -> None:
    assert control_plane.config()["User"] == "10001:10001"
    assert control_plane.run("id", "-u") == "10001"
    assert control_plane.run("id", "-g") == "10001"


def test_its_version_is_this_checkouts(control_plane: Container) -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    seen = control_plane.run("switchman", "--version")
    assert seen.startswith(f"switchman {switchman.__version__} (commit {head}"), \
        f"the image says {seen!r}, the checkout is at {head}: run scripts/images again"
    assert seen == describe(), "the checkout has changed since the image was built: run scripts/images again"


def test_its_default_command_serves_healthz_on_the_api_port(control_plane: Container) -> None:
    config = control_plane.config()
    command = [*config["Entrypoint"], *config["Cmd"]]
    assert command == ["switchman", "serve"]
    api, xds = free_port(), free_port()
    env = {"SWITCHMAN_API_ADDRESS": f"127.0.0.1:{api}", "SWITCHMAN_XDS_ADDRESS": f"127.0.0.1:{xds}"}
    running = control_plane.start(command, env)
    try:
        status, _, body = wait_for(lambda: get(f"http://127.0.0.1:{api}/healthz"), 60, "/healthz answers")
        assert status == 200, body
        assert process_uid(running.pid) == 10001
    finally:
        code, output = running.stop()
    assert code == 0, output
    assert f"API on port {api}" in output
