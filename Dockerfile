# One slim image for every service; the service is chosen by the command
# (recalculator worker | recalculator cron | job-ledger serve | notifier serve).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
# (python -c, not a heredoc: the classic builder of docker-compose 1.x has no heredocs)
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY README.md ./
COPY contracts ./contracts
COPY chassis ./chassis
COPY services ./services
RUN pip install --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 LOG_FORMAT=json
RUN useradd --create-home --uid 10001 app
COPY --from=build /opt/venv /opt/venv
COPY data /app/data
# The emails volume is mounted here; a named volume takes this owner when first created.
RUN mkdir -p /app/var/emails && chown -R app:app /app/var
WORKDIR /app
USER app
# Every long-running command serves /healthz; compose overrides the port per service.
CMD ["job-ledger", "serve"]
