# lakesim in a container: a multi-stage build (the Rust toolchain stays in the first stage),
# the release binary alone in a slim runtime image, run as a non-root user.
#
#   docker build -t lakesim .
#   docker run --rm -v "$PWD/out:/results" lakesim fuzz --seeds 10000 --out /results/shard
#
# Sharding comes from the job engine's environment (JOB_COMPLETION_INDEX with LAKESIM_SHARDS,
# SLURM_ARRAY_TASK_ID, AWS_BATCH_JOB_ARRAY_INDEX); see the README's nightly section.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin lakesim

FROM debian:bookworm-slim
RUN useradd --create-home --uid 10001 lakesim \
    && mkdir /results && chown lakesim /results
COPY --from=build /src/target/release/lakesim /usr/local/bin/lakesim
USER 10001:10001
WORKDIR /home/lakesim
VOLUME /results
ENTRYPOINT ["lakesim"]
CMD ["fuzz", "--duration", "1h", "--out", "/results/campaign"]
