# The airoboros-bot image: the bots and the engine worker.
# The worker image (EXTRAS=gpu, the default) adds NVIDIA's cuBLAS 12 wheel, which CTranslate2
# loads at run time and does not bundle; the engine finds it in site-packages by itself. The GPU
# driver comes from the host (NVIDIA Container Toolkit: compose's device reservation). Bot-only
# images can skip it: --build-arg EXTRAS= .
FROM python:3.11-slim
ARG EXTRAS=gpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bots bots
COPY engine engine
COPY conversations conversations
COPY config config
COPY airoboros_bot airoboros_bot
RUN pip install ".${EXTRAS:+[$EXTRAS]}"
RUN useradd --create-home bot
USER bot
ENTRYPOINT []
CMD ["airoboros-bot", "worker"]
