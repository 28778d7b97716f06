# The OpenTelemetry Collector (contrib) with a health check. The upstream image is built
# from scratch, without a shell or an HTTP client, so Docker cannot ask its health_check
# extension anything; this adds a static busybox (for its wget) and changes nothing else.
FROM busybox:1.37.0-musl AS busybox

FROM otel/opentelemetry-collector-contrib:0.153.0
COPY --from=busybox /bin/busybox /bin/busybox
# The upstream image's unprivileged user, stated again so the image never runs as root.
USER 10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:13133/"]
