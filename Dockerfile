FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gunicorn.conf.py binds HOST:PORT (127.0.0.1:8000 by default); in a container it must listen on every interface.
ENV HOST=0.0.0.0

WORKDIR /srv

# Requirements first, so code changes do not reinstall the dependencies.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY app/ app/
COPY config.py wsgi.py gunicorn.conf.py gunicorn_worker.py ./

RUN useradd --system --no-create-home --shell /usr/sbin/nologin clinic
USER clinic

EXPOSE 8000

# The slim image has no curl; urlopen raises on anything but a 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Every setting is in gunicorn.conf.py, read from the working directory, as for `make run`; gunicorn is PID 1,
# so it gets SIGTERM, and a bad setting stops the container with one line instead of a crash loop.
CMD ["gunicorn", "wsgi:app"]
