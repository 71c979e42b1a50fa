//! What a call through [`Dispatch`](crate::Dispatch) can fail with, local or
//! remote. Each variant says whether the call may have run, because that
//! decides whether it is safe to try it again.

/// A call's failure, wherever the serving runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No node serves this name: NATS answered "no responders" and the
    /// router knows no node either. Nothing ran.
    #[error("no node serves {name:?}")]
    Unavailable {
        /// The serving's name.
        name: String,
    },
    /// Every node tried (up to the handle's `max_tries`) had no queue room,
    /// or the local serving had none. Nothing ran.
    #[error("serving is overloaded ({tries} nodes tried)")]
    Overloaded {
        /// Nodes that refused the call.
        tries: usize,
    },
    /// The deadline passed before the outputs came back. Items still queued
    /// on the node at the deadline were removed there and never ran.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The node had acknowledged the call and then went silent for longer
    /// than the handle's `silence_limit` (it died, or was cut off). The call
    /// may have run; it is tried again elsewhere only on an idempotent
    /// handle.
    #[error("node {node} was lost during the call")]
    NodeLost {
        /// The node's id.
        node: String,
    },
    /// Nothing at all came back within the `silence_limit`: the node that
    /// took the request died before it answered, or the connection was
    /// down. The call may have run, as with [`NodeLost`](Self::NodeLost).
    #[error("no answer from any node within the silence limit")]
    NoAnswer,
    /// The serving (local) or the node (remote) is shutting down. Nothing
    /// ran.
    #[error("serving is closed")]
    Closed,
    /// The batch function returned an error; its message.
    #[error("batch function failed: {0}")]
    Batch(String),
    /// The batch function panicked; the panic message.
    #[error("batch function panicked: {0}")]
    Panicked(String),
    /// The node could not read the request (another protocol version or
    /// codec, a malformed payload), or the caller could not read the reply.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The payload is larger than the NATS server's `max_payload`. Nothing
    /// was sent.
    #[error("payload of {size} bytes exceeds the server's max_payload of {max}")]
    PayloadTooLarge {
        /// The encoded payload's size.
        size: usize,
        /// The server's limit.
        max: usize,
    },
    /// The NATS client failed to send (the connection is closed).
    #[error("nats: {0}")]
    Nats(String),
    /// Any other failure of the call (local pre- or post-processing, a
    /// wrong output count); its message.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// True when the call is known not to have started, so any node may
    /// take it instead.
    pub fn never_ran(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Overloaded { .. }
                | Error::Closed
                | Error::PayloadTooLarge { .. }
        )
    }
}

impl<E: std::fmt::Display> From<batch_serving::Error<E>> for Error {
    fn from(error: batch_serving::Error<E>) -> Self {
        use batch_serving::Error as Local;
        match error {
            Local::Batch(e) => Error::Batch(e.to_string()),
            Local::Panicked { message } => Error::Panicked(message.to_string()),
            Local::Closed => Error::Closed,
            // Refused before it was queued, as overload is: another node
            // may still make it in time.
            Local::Overloaded { .. } | Local::PredictedLate { .. } => {
                Error::Overloaded { tries: 1 }
            }
            Local::DeadlineExceeded => Error::DeadlineExceeded,
            Local::Preprocess(e) => Error::BadRequest(e.to_string()),
            other => Error::Failed(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errors_keep_their_meaning() {
        let e: Error = batch_serving::Error::<String>::Overloaded {
            requested: 1,
            capacity: 4,
        }
        .into();
        assert!(e.never_ran());
        let e: Error = batch_serving::Error::<String>::PredictedLate {
            predicted: std::time::Duration::from_millis(30),
            allowed: std::time::Duration::from_millis(18),
        }
        .into();
        assert!(
            e.never_ran(),
            "refused at admission: another node may take it"
        );
        let e: Error = batch_serving::Error::Batch(std::sync::Arc::new("boom".to_string())).into();
        assert_eq!(e, Error::Batch("boom".into()));
        assert!(!e.never_ran());
        assert!(!Error::NodeLost { node: "n".into() }.never_ran());
        assert!(!Error::NoAnswer.never_ran());
    }
}
