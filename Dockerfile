# oauth-bot: slim, non-root, with a health check on /healthz.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=3000 \
    DATABASE_URL=sqlite:////data/oauth-bot.db
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /data --create-home oauthbot
USER 10001
WORKDIR /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request,sys; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/readyz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["oauth-bot"]
CMD ["serve"]
