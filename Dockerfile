# One slim image for every service; the service is chosen by the command
# (recalculator worker | recalculator cron | job-ledger serve | notifier serve).
# Dependencies come from requirements.lock (exact versions, every file's hash; `make lock`).

FROM python:3.13-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the lock changes. pip refuses
# any file whose hash is not in the lock, and any package the lock does not pin.
COPY requirements.lock ./
RUN pip install -r requirements.lock --require-hashes --only-binary :all:
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY chassis ./chassis
COPY services ./services
RUN pip install --no-deps --no-build-isolation .

FROM python:3.13-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 LOG_FORMAT=json
RUN useradd --create-home --uid 10001 app
COPY --from=build /opt/venv /opt/venv
COPY data /app/data
# Named volumes mounted here take this owner when first created: the notifier's emails, and the
# RabbitMQ definitions the one-shot broker-users writes.
RUN mkdir -p /app/var/emails /app/var/rabbitmq && chown -R app:app /app/var
WORKDIR /app
USER app
# Every long-running command serves /healthz; compose overrides the port per service.
CMD ["job-ledger", "serve"]
