# route53-agent as a container image: a static (musl) binary on distroless,
# running as an unprivileged user. Build with `docker build -t route53-agent .`
#
# The agent reads its configuration from /etc/route53-agent/config.toml:
# mount it there (deploy/ holds an ECS task definition and a Kubernetes pod).
# From a container on a bridge network, IMDSv2 needs the instance's metadata
# hop limit at 2; see docs/platforms.md.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools file \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# scripts/build-static builds, then refuses a binary that is not static.
RUN cp "$(CARGO_TARGET_DIR=/src/target scripts/build-static)" /route53-agent

# distroless/static holds CA certificates (for HTTPS to Route 53), /etc/passwd
# with the user "nonroot" (65532), and nothing else: no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /route53-agent /usr/local/bin/route53-agent
USER nonroot:nonroot
# SIGTERM starts deregistration; give the container at least
# shutdown_timeout (20 s by default) plus a margin before SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/route53-agent"]
CMD ["run", "--config", "/etc/route53-agent/config.toml"]
