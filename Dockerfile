FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libcurl4-openssl-dev libssl-dev procps \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY producers producers
COPY tasks tasks
COPY chromasync chromasync
COPY docs/prometheus.yml docs/prometheus.yml
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
CMD ["chromasync", "--help"]
