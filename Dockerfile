# Switchman control-plane image: build a wheel, install it in a clean runtime, run as non-root.
# Build: docker build -t switchman .    Run: docker run -p 18000:18000 -p 8080:8080 switchman

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY switchman ./switchman
COPY envoy/templates ./envoy/templates
RUN python -m build --wheel --outdir /wheels

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/switchman --create-home switchman
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/switchman
ENV SWITCHMAN_XDS_ADDRESS=0.0.0.0:18000 \
    SWITCHMAN_API_ADDRESS=0.0.0.0:8080 \
    PYTHONUNBUFFERED=1
EXPOSE 18000 8080
HEALTHCHECK --interval=10s --timeout=2s CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["switchman"]
CMD ["serve"]
