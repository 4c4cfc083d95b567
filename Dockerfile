# syntax=docker/dockerfile:1
# Warden's image: a static binary on distroless, running as non-root with a
# read-only root filesystem (the chart sets readOnlyRootFilesystem).
# Base images are pinned by digest; refresh them with
#   crane digest golang:1.26-alpine
#   crane digest gcr.io/distroless/static-debian12:nonroot
# and verify with `warden scan Dockerfile`.

FROM golang:1.26-alpine@sha256:f1ddd9fe14fffc091dd98cb4bfa999f32c5fc77d2f2305ea9f0e2595c5437c14 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/wardenhq/warden/internal/cli.Version=${VERSION}" \
    -o /out/warden ./cmd/warden

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /out/warden /usr/local/bin/warden
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/warden"]
