# pacsgw image from an executable already built on a Debian 12 host (no compiler, no build stage):
# the runtime stage of docker/Dockerfile, fed from a prepared context instead of a build stage.
# scripts/build-image.sh prepares that context and builds this file:
#
#   sudo scripts/build-image.sh prebuilt build/pacsgw      # localhost/pacsgw:prebuilt
#
# Context (made by the script): pacsgw and pacsgw-eval (stripped), runtime-packages.txt
# (scripts/list-runtime-packages.sh of both), models/ (the shipped models), pacsgw.yaml (docker/pacsgw.yaml),
# pacsgw.dic (dicom/pacsgw.dic). The package layer comes first, so a new
# executable with the same libraries rebuilds only the last layers (seconds).
FROM debian:bookworm-slim
COPY runtime-packages.txt /tmp/runtime-packages.txt
# The package list is split into words on purpose: one name per line in the file.
# hadolint ignore=DL3008,SC2046
RUN apt-get update \
 && apt-get install -y --no-install-recommends dcmtk ca-certificates $(cat /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 pacsgw \
 && useradd --system --uid 10001 --gid pacsgw --home-dir /var/lib/pacsgw --no-create-home \
            --shell /usr/sbin/nologin pacsgw \
 && install -d -m 0700 -o pacsgw -g pacsgw /var/lib/pacsgw \
 && install -d -m 0755 /etc/pacsgw
COPY pacsgw.yaml /etc/pacsgw/pacsgw.yaml
COPY pacsgw.dic /usr/local/share/pacsgw/pacsgw.dic
# The shipped models where the learned backends look for them (cipher.backend: ae-aes by name alone).
COPY models/ /usr/local/share/pacsgw/models/
COPY pacsgw-eval /usr/local/bin/pacsgw-eval
COPY pacsgw /usr/local/bin/pacsgw

USER pacsgw
ENV PACSGW_DATA_DIR=/var/lib/pacsgw \
    TCP_NODELAY=1 \
    DCMDICTPATH=/usr/share/libdcmtk17/dicom.dic:/usr/share/libdcmtk17/private.dic:/usr/local/share/pacsgw/pacsgw.dic
VOLUME ["/var/lib/pacsgw"]
EXPOSE 11112 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /health/ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/pacsgw"]
CMD ["serve", "--config", "/etc/pacsgw/pacsgw.yaml"]
