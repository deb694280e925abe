# Cloud-GPU image: the equireg CLI with the versions CI tests (constraints.txt; PyPI's torch wheels
# bring their own CUDA libraries, so a plain Python base is enough: run with --gpus all).
#   docker build --build-arg UID=$(id -u) --build-arg GID=$(id -g) -t equireg-lit .
#   docker run --gpus all -v $PWD/weights:/work/weights -v $PWD/data:/work/data \
#       -v $PWD/runs:/work/runs -v $PWD/data_cache:/work/data_cache equireg-lit \
#       predict --config configs/predict/ffhq256_sr4_dps_equireg.yaml --trainer.accelerator gpu
# Volumes: weights/ (checkpoints, e.g. ffhq_10m.pt; docs/priors.md), data/ (image folders),
# runs/ (outputs), data_cache/ (generated datasets, torch hub cache for LPIPS backbones).
FROM python:3.11-slim
ARG UID=1000
ARG GID=1000
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TORCH_HOME=/work/data_cache/torch HF_HUB_OFFLINE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd -g "$GID" equireg && useradd -m -u "$UID" -g "$GID" equireg
COPY constraints.txt pyproject.toml README.md /opt/equireg-lit/
COPY equireg_lit /opt/equireg-lit/equireg_lit
COPY callbacks /opt/equireg-lit/callbacks
COPY datamodules /opt/equireg-lit/datamodules
RUN pip install -c /opt/equireg-lit/constraints.txt /opt/equireg-lit && equireg --version
WORKDIR /work
COPY configs /work/configs
# Outputs written by the container belong to the host user who built it (UID / GID above).
RUN mkdir -p weights data runs data_cache && chown -R equireg:equireg /work
USER equireg
VOLUME ["/work/weights", "/work/data", "/work/runs", "/work/data_cache"]
ENTRYPOINT ["equireg"]
CMD ["--help"]
