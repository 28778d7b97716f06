# The OpenTelemetry Collector (contrib) with a health check. The upstream image is built
# from scratch, without a shell or an HTTP client, so Docker cannot ask its health_check
# extension anything; this adds a static busybox (for its wget) and changes nothing else.
# Both bases are pinned by tag and by the digest of their multi-arch index manifest; to
# move to a new release, `docker buildx imagetools inspect <name>:<tag>` prints its digest.
FROM busybox:1.37.0-musl@sha256:5cec3fc171c87218698e85a52af7087de727372aae264a787b8112901a5b0092 AS busybox

FROM otel/opentelemetry-collector-contrib:0.153.0@sha256:93aad750175cbf1a973ae1c5886c3371f4d800f61be25cdd26870b8441ffe9fa
COPY --from=busybox /bin/busybox /bin/busybox
# The upstream image's unprivileged user, stated again so the image never runs as root.
USER 10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:13133/"]
