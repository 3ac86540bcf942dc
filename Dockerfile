# syntax=docker/dockerfile:1
# Build: dependencies from the lock file into a virtual environment, then the app.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /srv/coverwatch
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
RUN uv sync --frozen --no-dev

# Run: a slim image, a non-root user; `coverwatch serve` migrates to head, then serves.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 coverwatch && mkdir /data && chown coverwatch /data
WORKDIR /srv/coverwatch
COPY --from=build /srv/coverwatch /srv/coverwatch
ENV PATH=/srv/coverwatch/.venv/bin:$PATH \
    COVERWATCH_DATABASE_URL=sqlite:////data/coverwatch.db \
    PYTHONUNBUFFERED=1
USER coverwatch
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["coverwatch", "serve", "--host", "0.0.0.0", "--port", "8000"]
