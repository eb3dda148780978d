# One image for every role: `notifier api | worker | gateway | up` (default: api).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY feeds ./feeds
COPY notifier ./notifier
COPY gateway ./gateway
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NOTIFIER_HTTP_HOST=0.0.0.0
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/notifier notifier
USER notifier
WORKDIR /home/notifier
EXPOSE 8000 8001
# exec form: the process is PID 1 and gets SIGTERM itself (graceful stop within NOTIFIER_HTTP_GRACE_S)
CMD ["notifier", "api"]
