//! The started servings of the model server, and the one router over
//! them.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use batch_serving_ort::embedding::Embedder;
use batch_serving_ort::{MiniLmFiles, MobileNetFiles};

use super::flags::ServerConfig;
use crate::embed_http::{EmbedState, embed_routes};
use crate::http::{ClassifyState, classify_routes, default_max_decodes, health_response};
use crate::json_errors::harden;
use crate::oip::repository::{labels_beside, models_in};
use crate::oip::{OipState, Repository, oip_routes};

/// The started servings of the model server, and the routes' states over
/// them.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    oip: OipState,
    classify: Option<ClassifyState>,
    embed: Option<EmbedState>,
}

impl FrontDoor {
    /// A server over servings already started: every model of `oip` over
    /// the protocol, and the classify and embed routes where given.
    pub fn new(oip: OipState, classify: Option<ClassifyState>, embed: Option<EmbedState>) -> Self {
        Self {
            oip,
            classify,
            embed,
        }
    }

    /// Starts what `config` asks for: every model in `--model-dir` over the
    /// protocol, or else the sample models of the models folder, MobileNet
    /// (over the protocol and `/v1/classify`, one serving) and MiniLM (over
    /// the protocol, and `/v1/embed`), each where its files are found.
    ///
    /// # Errors
    ///
    /// When no model is found, or one found cannot be loaded.
    pub fn start(config: &ServerConfig) -> Result<Self, String> {
        let settings = &config.serving;
        let decodes = config.max_decodes.unwrap_or_else(default_max_decodes);
        if let Some(dir) = &config.model_dir {
            let repository = Repository::start(models_in(dir)?, settings)?;
            let oip = OipState::new(repository).with_max_decodes(decodes);
            return Ok(Self::new(oip, None, None));
        }
        let models = settings.models.as_deref();
        let (mut classify, mut embed, mut repository) = (None, None, Repository::default());
        match MobileNetFiles::locate(models) {
            Ok(files) => {
                let classifier = settings
                    .start()
                    .map_err(|e| format!("model `mobilenet`: {e}"))?;
                repository = repository.with_model(
                    "mobilenet",
                    classifier.model().clone(),
                    labels_beside(&files.model),
                );
                classify = Some(ClassifyState::new(classifier, decodes));
            }
            Err(e) => tracing::warn!(%e, "no MobileNet: /v1/classify is not served"),
        }
        match MiniLmFiles::locate(models) {
            Ok(files) => {
                let embedder = config
                    .text
                    .start(settings)
                    .map_err(|e| format!("the embedder: {e}"))?;
                embed = Some(EmbedState::new(embedder, decodes));
                let minilm = Repository::start([("minilm".to_owned(), files.model)], settings)?;
                for (name, serving) in minilm.iter() {
                    repository = repository.with_model(name, serving.clone(), None);
                }
            }
            Err(e) => tracing::warn!(%e, "no MiniLM: /v1/embed is not served"),
        }
        if repository.is_empty() {
            return Err(
                "no model found: neither MobileNet nor MiniLM is in the models folder \
                        (set BATCH_SERVING_MODELS or --models, or give --model-dir)"
                    .to_owned(),
            );
        }
        let oip = OipState::new(repository).with_max_decodes(decodes);
        Ok(Self::new(oip, classify, embed))
    }

    /// The protocol's state: the repository of models.
    pub fn oip(&self) -> &OipState {
        &self.oip
    }

    /// The sentence embedder behind `/v1/embed`, if it is served.
    pub fn embedder(&self) -> Option<&Embedder> {
        self.embed.as_ref().map(EmbedState::embedder)
    }

    /// Whether every serving still takes calls.
    pub fn is_open(&self) -> bool {
        crate::oip::is_ready(self.oip.repository())
            && self.embedder().is_none_or(|e| !e.serving().is_closed())
    }

    /// The routes a model server answers: the protocol's, `/v1/classify`
    /// and `/v1/embed` where served, `/health` and `/metrics`, with the
    /// request timeout and one error shape over all of them. Protocol
    /// bodies are bounded by `max_body_bytes`; the two `/v1` routes keep
    /// their own limits.
    pub fn router(&self, max_body_bytes: usize, request_timeout: Duration) -> Router {
        let mut routes = oip_routes(self.oip.clone(), max_body_bytes).merge(
            Router::new()
                .route("/health", get(health))
                .route("/metrics", get(metrics))
                .with_state(self.clone()),
        );
        if let Some(classify) = &self.classify {
            routes = routes.merge(classify_routes(classify.clone()));
        }
        if let Some(embed) = &self.embed {
            routes = routes.merge(embed_routes(embed.clone()));
        }
        harden(routes, request_timeout)
    }

    /// One line naming what is served.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.oip.repository().iter().map(|(name, _)| name).collect();
        let mut routes = Vec::new();
        if self.classify.is_some() {
            routes.push("/v1/classify");
        }
        if self.embed.is_some() {
            routes.push("/v1/embed");
        }
        format!(
            "{} over the Open Inference Protocol{}",
            names.join(", "),
            if routes.is_empty() {
                String::new()
            } else {
                format!(", and {}", routes.join(" and "))
            }
        )
    }
}

async fn health(State(door): State<FrontDoor>) -> Response {
    health_response(!door.is_open())
}

async fn metrics() -> Response {
    crate::http::metrics_response()
}
