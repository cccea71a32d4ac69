FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv

# Requirements first, so code changes do not reinstall the dependencies.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY app/ app/
COPY config.py wsgi.py ./

RUN useradd --system --no-create-home --shell /usr/sbin/nologin clinic
USER clinic

EXPOSE 8000

# The slim image has no curl; urlopen raises on anything but a 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# sh -c expands WEB_CONCURRENCY; exec makes gunicorn PID 1 so it gets SIGTERM.
# No access log: the app logs its own request line without query strings.
CMD ["sh", "-c", "exec gunicorn wsgi:app --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-2} --worker-class gthread --threads 4 --no-control-socket"]
