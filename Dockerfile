# The airoboros-bot image: the bots and the engine worker (CTranslate2 wheels bundle CUDA 12).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bots bots
COPY engine engine
COPY conversations conversations
COPY config config
COPY airoboros_bot airoboros_bot
RUN pip install .
RUN useradd --create-home bot
USER bot
ENTRYPOINT []
CMD ["airoboros-bot", "worker"]
