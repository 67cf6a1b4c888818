# The gateway and simulator image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY alerting alerting
COPY device_profiles device_profiles
COPY api api
COPY simulators simulators
RUN pip install --no-cache-dir .
RUN useradd --system --home /var/lib/safety-gateway gateway && mkdir -p /var/lib/safety-gateway \
    && chown gateway /var/lib/safety-gateway
USER gateway
EXPOSE 8080
CMD ["safety-gateway", "run", "--config", "/etc/safety-gateway/gateway.yaml"]
