# idemsync's container image: the wheel and its dependencies built in one
# stage, installed into a clean one that runs as a non-root user. The steps
# are the ones tests/e2e/test_installed_wheel.py runs: pip wheel, pip install
# with constraints.txt, idemsync db upgrade (docker-compose.yml's migrate
# service), idemsync serve.
#
#   docker build -t idemsync .
#   docker compose up          # PostgreSQL, migrations, server, projections, Prometheus
#
# Configuration by environment: IDEMSYNC_DATABASE_URL, IDEMSYNC_CONFIG (a
# TOML file mounted into the container; without it the shipped example with
# its demo source), and the secrets the file names as env:NAME.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY domain/ domain/
COPY infrastructure/ infrastructure/
COPY migrations/ migrations/
COPY projections/ projections/
COPY web/ web/
COPY idemsync/ idemsync/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels /wheels/idemsync-*.whl

FROM python:3.11-slim
RUN groupadd --gid 10001 idemsync \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin idemsync
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir --no-index --find-links /wheels \
        --constraint /tmp/constraints.txt /wheels/idemsync-*.whl \
    && rm -rf /wheels /tmp/constraints.txt
USER 10001:10001
WORKDIR /home/idemsync
ENV PYTHONUNBUFFERED=1 \
    IDEMSYNC_DATABASE_URL=sqlite:////home/idemsync/var/idemsync.db
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
CMD ["idemsync", "serve", "--host", "0.0.0.0", "--port", "8000"]
