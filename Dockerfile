# chatwell: one image for API processes (`chatwell serve`) and ingestion workers (`chatwell worker`).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CHATWELL_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[postgres,redis,simd,queue,anthropic]' \
 && useradd --create-home --uid 10001 chatwell && mkdir -p /data && chown chatwell /data
USER chatwell
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["chatwell", "serve", "--host", "0.0.0.0", "--port", "8000"]
