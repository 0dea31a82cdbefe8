# syntax=docker/dockerfile:1
# The servicedesk image: the static binary (deploy/build.sh, the same recipe
# the tests run) on distroless static, as the non-root user 65532.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t servicedesk .
#   docker run --rm servicedesk version
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# No build paths in the image's binary.
ENV GOFLAGS=-trimpath
RUN sh deploy/build.sh /out/servicedesk "$VERSION" \
 && mkdir -p /out/var/lib/servicedesk

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell. The probe for health checks is the binary itself:
# servicedesk healthcheck [URL].
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/servicedesk /usr/local/bin/servicedesk
# The state directory, owned by the runtime user: a volume mounted here
# starts with that owner. The working directory is here too, so the default
# database.url (sqlite://./servicedesk.db) lands on the volume without an
# environment override that would beat database.url in the config file.
COPY --from=build --chown=65532:65532 /out/var/lib/servicedesk /var/lib/servicedesk
WORKDIR /var/lib/servicedesk
VOLUME ["/var/lib/servicedesk"]
USER 65532:65532
# The config file comes from a mount (a compose bind mount, a Kubernetes
# ConfigMap); secrets as NAME_file paths or SERVICEDESK_*_FILE variables.
# A container listens on every address: SERVICEDESK_HTTP_LISTEN beats
# http.listen in the file (set it again to move the port).
ENV SERVICEDESK_CONFIG=/etc/servicedesk/servicedesk.yaml \
    SERVICEDESK_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 8080
# SIGTERM drains in-flight work for worker.shutdown_timeout (30s):
# give the container longer than that to stop (docker stop -t 45,
# compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["servicedesk"]
CMD ["serve"]
