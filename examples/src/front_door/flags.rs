//! The model server's flags, each also read from a `BS_*` variable: where
//! it listens, what it serves, and the limits every route shares.

use std::path::PathBuf;

use crate::embed_setup::TextConfig;
use crate::oip::DEFAULT_MAX_BODY_BYTES;
use crate::serve::HttpLimits;
use crate::setup::ServingConfig;

/// The one set of flags of the model server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// The address HTTP listens on (Triton's port by default).
    #[arg(long, env = "BS_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: String,
    /// The address the gRPC service listens on (`inference.GRPCInferenceService`).
    #[arg(long, env = "BS_GRPC_ADDR", default_value = "127.0.0.1:8001")]
    pub grpc_addr: String,
    /// Serve every ONNX model in this folder (`NAME.onnx`, or `NAME/` with
    /// one .onnx file) over the protocol, instead of MobileNet and MiniLM
    /// from the models folder (and without `/v1/classify` and `/v1/embed`).
    #[arg(long, env = "BS_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// The largest protocol request body accepted, in bytes, also once
    /// inflated (larger ones get 413).
    #[arg(long, env = "BS_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Request bodies pre-processed at once on each route (images decoded,
    /// texts tokenized, tensors parsed) [default: two per core].
    #[arg(long, env = "BS_MAX_DECODES")]
    pub max_decodes: Option<usize>,
    /// Models folder, batch size, timeout, partitions, threads, queue, policy.
    #[command(flatten)]
    pub serving: ServingConfig,
    /// The embedder's token limit and length buckets.
    #[command(flatten)]
    pub text: TextConfig,
    /// Header, request and drain time limits.
    #[command(flatten)]
    pub limits: HttpLimits,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerConfig,
    }

    #[test]
    fn one_flag_set_reaches_every_part_of_the_server() {
        let cli = Cli::try_parse_from([
            "model_server",
            "--addr",
            "0.0.0.0:9000",
            "--grpc-addr=0.0.0.0:9001",
            "--batch-size",
            "8",
            "--max-tokens",
            "64",
            "--buckets",
            "none",
            "--request-timeout-ms",
            "500",
            "--max-decodes",
            "3",
        ])
        .unwrap();
        let config = cli.server;
        assert_eq!(
            (config.addr.as_str(), config.grpc_addr.as_str()),
            ("0.0.0.0:9000", "0.0.0.0:9001")
        );
        assert_eq!(config.serving.batch_size, 8);
        assert_eq!(config.text.max_tokens, 64);
        assert_eq!(config.text.buckets().edges().len(), 0);
        assert_eq!(config.limits.request_timeout.as_millis(), 500);
        assert_eq!(config.max_decodes, Some(3));
        let defaults = Cli::try_parse_from(["model_server"]).unwrap().server;
        assert_eq!(
            (defaults.addr.as_str(), defaults.grpc_addr.as_str()),
            ("127.0.0.1:8000", "127.0.0.1:8001")
        );
        assert_eq!(defaults.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }
}
