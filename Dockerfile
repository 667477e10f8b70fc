# Lotline API image. Built by docker-compose.yml; see that file for the stack.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WeasyPrint (recall reports as PDF) loads Pango; DejaVu gives it a font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Install from a scratch copy of the source (.dockerignore keeps it small),
# then drop it: the runtime only needs the installed package.
COPY . /tmp/src
RUN pip install /tmp/src && rm -rf /tmp/src

# Run unprivileged, from a directory that user can write (local state, if any).
RUN useradd --create-home --home-dir /var/lib/lotline --shell /usr/sbin/nologin lotline
USER lotline
WORKDIR /var/lib/lotline

EXPOSE 8000

# `lotline serve` makes the store or upgrades its schema first (docker-compose.yml runs
# `lotline db upgrade` as a step of its own). LOTLINE_DEMO=1 seeds demo data before serving; a
# failed seed stops the container.
CMD ["sh", "-c", "if [ \"${LOTLINE_DEMO:-0}\" = 1 ]; then lotline demo || exit 1; fi; exec lotline serve --host 0.0.0.0 --port 8000"]
