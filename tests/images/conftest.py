"""Fixtures of the image tests: one working container per image that scripts/images built (skipped without
SWITCHMAN_TEST_IMAGES), removed when the tests are done."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.images.buildah import CHECKOUT_IMAGE, ENVOY_IMAGE, STORAGE, SWITCHMAN_IMAGE, Container, container

ENV = "SWITCHMAN_TEST_IMAGES"


def images_or_skip() -> None:
    if not os.environ.get(ENV):
        pytest.skip(f"needs the images: set {ENV}=1 once scripts/images has built them (into {STORAGE}; "
                    "as root, with buildah)")


@pytest.fixture(scope="module")
def control_plane() -> Iterator[Container]:
    images_or_skip()
    with container(SWITCHMAN_IMAGE) as made:
        yield made


@pytest.fixture(scope="module")
def checkout() -> Iterator[Container]:
    images_or_skip()
    with container(CHECKOUT_IMAGE) as made:
        yield made


@pytest.fixture(scope="module")
def envoy() -> Iterator[Container]:
    images_or_skip()
    with container(ENVOY_IMAGE) as made:
        yield made
