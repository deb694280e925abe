FROM pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime
# Cloud-GPU image: the equireg CLI on a CUDA PyTorch base. Mount data, weights and outputs:
#   docker build -t equireg-lit .
#   docker run --gpus all -v $PWD/weights:/weights -v $PWD/runs:/work/runs equireg-lit \
#       predict --config configs/predict/mnist32_box_inpainting_dps_equireg.yaml --trainer.accelerator gpu
WORKDIR /work
COPY pyproject.toml README.md /opt/equireg-lit/
COPY equireg_lit /opt/equireg-lit/equireg_lit
COPY callbacks /opt/equireg-lit/callbacks
COPY datamodules /opt/equireg-lit/datamodules
COPY configs /work/configs
# The base image's torch satisfies the pin, so pip keeps it and adds only the rest.
RUN pip install --no-cache-dir /opt/equireg-lit && equireg --help > /dev/null
ENTRYPOINT ["equireg"]
CMD ["--help"]
