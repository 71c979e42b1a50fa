//! The sentence-embedding serving: text in, one unit vector out, with
//! sentences of similar length batched together.

use std::sync::Arc;

use batch_serving::{Batch, Builder, DispatchStream, Error, Serving};

use super::encoder::Encoder;
use super::{LengthBuckets, Overflow, Padding, TextTokenizer, Tokens};
use crate::serving::ConfigureServing;
use crate::{MiniLmFiles, ModelSession, OrtError, SessionOptions};

pub use super::encoder::EmbeddedBatch;

/// The most tokens a BERT-style encoder such as all-MiniLM-L6-v2 takes: its
/// position table has 512 rows.
const MAX_POSITIONS: usize = 512;

/// The hook event a batch sends to streaming callers, with an
/// [`EmbeddedBatch`] payload.
pub const EMBEDDED_EVENT: &str = "embedded";

/// The core builder an [`Embedder`] is configured through.
pub type EmbedderCoreBuilder = Builder<Tokens, Vec<f32>, OrtError>;

/// Configures an [`Embedder`].
#[derive(Clone)]
pub struct EmbedderBuilder {
    files: MiniLmFiles,
    options: SessionOptions,
    max_tokens: usize,
    overflow: Overflow,
    buckets: LengthBuckets,
    padding: Padding,
    configure: Option<ConfigureServing<Tokens, Vec<f32>>>,
}

impl EmbedderBuilder {
    /// How each partition's session is created.
    #[must_use]
    pub fn session_options(mut self, options: SessionOptions) -> Self {
        self.options = options;
        self
    }

    /// The token limit per sentence, special tokens included (default
    /// [`DEFAULT_MAX_TOKENS`](super::DEFAULT_MAX_TOKENS), at most 512).
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// What happens to a longer sentence (default: truncate).
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The length buckets that become batch keys (default
    /// [`DEFAULT_BUCKET_EDGES`](super::DEFAULT_BUCKET_EDGES)).
    #[must_use]
    pub fn buckets(mut self, buckets: LengthBuckets) -> Self {
        self.buckets = buckets;
        self
    }

    /// How far each batch is padded (default: to its longest sentence).
    #[must_use]
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Adjusts the core serving: batch size (default 16), timeout, policy,
    /// partitions, queue capacity. The batch key is already set from the
    /// buckets.
    #[must_use]
    pub fn serving(
        mut self,
        configure: impl Fn(EmbedderCoreBuilder) -> EmbedderCoreBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(configure));
        self
    }

    /// Loads the tokenizer, opens the encoder in every partition and starts
    /// serving.
    ///
    /// # Errors
    ///
    /// [`OrtError::Configuration`] for a token limit beyond the encoder's or
    /// a core setting that cannot work; [`OrtError::File`] for a missing
    /// tokenizer file; the [`OrtError`] of a partition whose runtime or
    /// model cannot be loaded, or whose model is not a BERT-style encoder.
    pub fn start(self) -> Result<Embedder, OrtError> {
        if self.max_tokens > MAX_POSITIONS {
            return Err(OrtError::Configuration(format!(
                "max_tokens is {}; the encoder has {MAX_POSITIONS} positions",
                self.max_tokens
            )));
        }
        let tokenizer = TextTokenizer::load(&self.files.tokenizer, self.max_tokens, self.overflow)?;
        let (model, options, padding) = (self.files.model, self.options, self.padding);
        let factory = move |_partition: usize| {
            let session = ModelSession::open(&model, &options)?;
            Encoder::new(session, padding)
        };
        let buckets = self.buckets;
        let mut builder = Serving::with_state(factory, run_batch)
            .batch_size(16)
            .key_by(move |tokens: &Tokens| buckets.key(tokens.len()))
            .name("embedder");
        if let Some(configure) = &self.configure {
            builder = configure(builder);
        }
        Ok(Embedder {
            tokenizer: Arc::new(tokenizer),
            serving: builder.start()?,
        })
    }
}

fn run_batch(encoder: &mut Encoder, batch: Batch<Tokens>) -> Result<Vec<Vec<f32>>, OrtError> {
    let (vectors, cost) = encoder.run(&batch)?;
    batch.emit(EMBEDDED_EVENT, cost);
    Ok(vectors)
}

impl std::fmt::Debug for EmbedderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedderBuilder")
            .field("files", &self.files)
            .field("max_tokens", &self.max_tokens)
            .field("overflow", &self.overflow)
            .field("buckets", &self.buckets)
            .field("padding", &self.padding)
            .finish_non_exhaustive()
    }
}

/// A sentence-embedding serving. Tokenizing runs in the caller's task; the
/// encoder runs in batches of sentences from the same length bucket.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving_ort::MiniLmFiles;
/// use batch_serving_ort::embedding::{Embedder, cosine_similarity};
/// let embedder = Embedder::builder(MiniLmFiles::locate(None)?).start()?;
/// let food = embedder.embed("A man is eating food.").await?;
/// let bread = embedder.embed("A man is eating a piece of bread.").await?;
/// assert!(cosine_similarity(&food, &bread) > 0.7);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Embedder {
    tokenizer: Arc<TextTokenizer>,
    serving: Serving<Tokens, Vec<f32>, OrtError>,
}

impl Embedder {
    /// A builder for the encoder and tokenizer in `files`, with the default
    /// buckets, padding to each batch's longest sentence, and truncation at
    /// 128 tokens.
    pub fn builder(files: MiniLmFiles) -> EmbedderBuilder {
        EmbedderBuilder {
            files,
            options: SessionOptions::default(),
            max_tokens: super::DEFAULT_MAX_TOKENS,
            overflow: Overflow::default(),
            buckets: LengthBuckets::default(),
            padding: Padding::default(),
            configure: None,
        }
    }

    /// The tokenizer, for counting tokens or tokenizing ahead of time.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Embeds one sentence.
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`] for text the tokenizer refuses (this caller
    /// only), or any error of [`Serving::dispatch`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`]: dropping the future withdraws the sentence
    /// if its batch has not started.
    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, Error<OrtError>> {
        // Room first: a caller that has to wait tokenizes once it has room.
        let room = self.serving.reserve(1).await?;
        let tokens = self.tokenizer.tokenize(text).map_err(Error::Preprocess)?;
        room.dispatch(tokens).await
    }

    /// Embeds several sentences as one call; they are spread over the
    /// length buckets and may share batches with other callers' sentences.
    ///
    /// # Errors
    ///
    /// As [`Embedder::embed`]; one refused sentence fails the call before
    /// anything is queued.
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    pub async fn embed_many<S: AsRef<str>>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, Error<OrtError>> {
        if texts.len() > self.serving.queue_capacity() {
            // Admitted piece by piece, so it cannot be admitted up front.
            let tokens = self.tokenize_all(texts)?;
            return self.serving.dispatch_many(tokens).await;
        }
        let room = self.serving.reserve(texts.len()).await?;
        room.dispatch_many(self.tokenize_all(texts)?).await
    }

    /// [`Embedder::embed_many`] that fails at once with
    /// [`Error::Overloaded`] instead of waiting for queue room, for servers
    /// that shed load. Room is taken before any text is tokenized, so a
    /// refused call costs no tokenizing.
    ///
    /// # Errors
    ///
    /// As [`Embedder::embed_many`], plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::try_dispatch_many`].
    pub async fn try_embed_many<S: AsRef<str>>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, Error<OrtError>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let room = self.serving.try_reserve(texts.len())?;
        room.dispatch_many(self.tokenize_all(texts)?).await
    }

    /// Embeds several sentences and streams the vectors per executed batch,
    /// with an [`EMBEDDED_EVENT`] hook per batch, for progress displays.
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`] for a sentence the tokenizer refuses, before
    /// anything is queued; the stream carries the serving's errors.
    pub fn embed_stream<S: AsRef<str>>(
        &self,
        texts: &[S],
    ) -> Result<DispatchStream<Tokens, Vec<f32>, OrtError>, Error<OrtError>> {
        Ok(self.serving.dispatch_stream(self.tokenize_all(texts)?))
    }

    /// Tokenizes every text, failing on the first the tokenizer refuses:
    /// what the calls do after admission, public for callers that tokenize
    /// off the async workers (into a [`Reservation`](batch_serving::Reservation)).
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`] for a text the tokenizer refuses.
    pub fn tokenize_all<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Tokens>, Error<OrtError>> {
        texts
            .iter()
            .map(|text| self.tokenizer.tokenize(text.as_ref()))
            .collect::<Result<_, _>>()
            .map_err(Error::Preprocess)
    }

    /// The underlying serving of token ids, for `stats`, `shutdown` and
    /// callers that tokenize themselves.
    pub fn serving(&self) -> &Serving<Tokens, Vec<f32>, OrtError> {
        &self.serving
    }
}
