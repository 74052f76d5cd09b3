# syntax=docker/dockerfile:1
# Multi-stage build: a static flowgate binary on a distroless, non-root base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
# go-smtp is a patched copy in the tree (internal/third_party/go-smtp/FLOWGATE-PATCH.md)
COPY internal/third_party/go-smtp/go.mod internal/third_party/go-smtp/go.sum internal/third_party/go-smtp/
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/flowgate/flowgate/internal/app.Version=${VERSION}" \
      -o /out/flowgate ./cmd/flowgate \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flowgate /usr/local/bin/flowgate
# The data directory (SQLite file when no DATABASE_URL, generated TLS key)
# belongs to the non-root user the image runs as.
COPY --from=build --chown=65532:65532 /out/data /var/lib/flowgate
ENV FLOWGATE_DATA_DIR=/var/lib/flowgate \
    FLOWGATE_HTTP_ADDR=0.0.0.0:8080 \
    FLOWGATE_SMTP_ADDR=0.0.0.0:2525
VOLUME ["/var/lib/flowgate"]
USER 65532:65532
EXPOSE 8080 2525
ENTRYPOINT ["/usr/local/bin/flowgate"]
CMD ["serve"]
