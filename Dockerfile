# MyiBot: slim Python 3.12, dependencies from requirements.txt only, non-root.
FROM python:3.12-slim

# GLIBC_TUNABLES: Argon2's 19 MiB block is mapped for each PIN check and returned after it
# (gunicorn.conf.py); asked for in huge pages, mapping it costs about a fifth of the faults
# (paced PIN p99 66-102 ms instead of 120-185, docs/PERFORMANCE.md). Read by glibc when a
# process starts: here, not in gunicorn.conf.py. Without transparent huge pages, nothing changes.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
    PORT=3001

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# collectstatic needs settings to load; these build-time values never reach
# the running app, which gets its secrets from `fly secrets`.
RUN DEBUG=false SECRET_KEY=collectstatic TWILIO_AUTH_TOKEN=collectstatic \
    BASE_URL=https://build.invalid PIN_PEPPER=collectstatic \
    python manage.py collectstatic --noinput \
 && DEBUG=false SECRET_KEY=catalogue TWILIO_AUTH_TOKEN=catalogue BASE_URL=https://build.invalid PIN_PEPPER=catalogue \
    python manage.py catalogue --check --compile \
 && useradd --system --uid 10001 --no-create-home myibot

USER myibot

EXPOSE 3001

CMD ["gunicorn", "--config", "gunicorn.conf.py", "myibot.wsgi"]
