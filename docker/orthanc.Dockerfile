# A PACS for docker-compose.yml: Debian's Orthanc with the configuration mounted at run time.
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends orthanc curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o orthanc -g orthanc /var/lib/orthanc/db
USER orthanc
EXPOSE 4242 8042
VOLUME ["/var/lib/orthanc/db"]
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["curl", "-sf", "http://127.0.0.1:8042/system"]
ENTRYPOINT ["/usr/sbin/Orthanc"]
CMD ["/etc/orthanc/orthanc.json"]
