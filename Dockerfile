# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless, non-root base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/biomatch ./cmd/biomatch

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/biomatch /usr/local/bin/biomatch
USER nonroot:nonroot
ENV LISTEN_ADDR=:8000 METRICS_ADDR=:9464
EXPOSE 8000 9464
ENTRYPOINT ["/usr/local/bin/biomatch"]
CMD ["serve"]
