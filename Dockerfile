# Multi-stage build of the graphscale binary (the operator is `graphscale operator`).
# Build: docker build -t graphscale:latest .   (not built in CI: CI machines have no Docker engine)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p graphscale --bin graphscale \
 && strip target/release/graphscale

# Distroless, non-root (uid 65532), nothing but the binary and CA certificates.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/graphscale /usr/local/bin/graphscale
COPY --from=build /src/LICENSE /usr/share/doc/graphscale/LICENSE
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/graphscale"]
CMD ["operator"]
