# vbg-node in a container: slim Debian Python image, non-root, the install steps of the
# README / docs/installation-debian.md step 4 (a virtualenv under /opt/vbg-node/.venv and
# `pip install` of this project). Run with compose.yaml (PostgreSQL, web, worker, TLS proxy).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

# pg_dump/pg_restore for `vbg-node admin backup` (compose runs PostgreSQL 15)
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/vbg-node --no-create-home --shell /usr/sbin/nologin vbg \
 && mkdir -p /var/lib/vbg-node && chown vbg:vbg /var/lib/vbg-node && chmod 750 /var/lib/vbg-node

COPY . /opt/vbg-node
WORKDIR /opt/vbg-node
RUN python3 -m venv /opt/vbg-node/.venv \
 && /opt/vbg-node/.venv/bin/pip install --upgrade pip \
 && /opt/vbg-node/.venv/bin/pip install /opt/vbg-node

ENV PATH=/opt/vbg-node/.venv/bin:$PATH \
    VBG_DATA_DIR=/var/lib/vbg-node \
    VBG_HOST=0.0.0.0 \
    VBG_PORT=8000
USER vbg
EXPOSE 8000
VOLUME ["/var/lib/vbg-node"]
HEALTHCHECK --interval=30s --timeout=5s CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["vbg-node", "serve"]
