//! Triton's additions to the protocol that its clients and load tools ask
//! for: a model's configuration, its statistics, and the repository index.
//! Each is derived from the serving and the model, once, as plain values
//! that the HTTP routes write as JSON and the gRPC service as messages, so
//! that the two protocols cannot disagree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use batch_serving::Policy;
use batch_serving_ort::{Dtype, ModelServing, TensorSpec};
use serde_json::{Value, json};

/// The only model version served.
pub const VERSION: &str = "1";

/// How many priority levels requests may ask for (`priority` 1 is the
/// highest; 0 asks for the default, the middle one).
pub const PRIORITY_LEVELS: u64 = 3;

/// One tensor of a model's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorConfig {
    /// The tensor's name in the graph.
    pub name: String,
    /// Triton's type name, such as `TYPE_FP32`.
    pub data_type: &'static str,
    /// The axes after the batch axis; -1 for a free one.
    pub dims: Vec<i64>,
}

/// A model's configuration, as Triton describes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// The name the model is served as.
    pub name: String,
    /// `onnxruntime_onnx`.
    pub platform: &'static str,
    /// `onnxruntime`.
    pub backend: &'static str,
    /// The serving's `batch_size`: the largest batch it forms.
    pub max_batch_size: u32,
    /// The inputs, in the graph's order.
    pub inputs: Vec<TensorConfig>,
    /// The outputs, in the graph's order.
    pub outputs: Vec<TensorConfig>,
    /// How long a batch waits to fill: the batch timeout under the timeout
    /// policy, 0 under the eager and adaptive ones (they never wait idle).
    pub max_queue_delay: Duration,
    /// The partitions, each a session of the model.
    pub instances: u32,
}

/// Triton's name for an element type.
pub fn triton_type(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F32 => "TYPE_FP32",
        Dtype::I64 => "TYPE_INT64",
        _ => "TYPE_INVALID",
    }
}

/// The configuration of the model served as `name`.
pub fn model_config(name: &str, model: &ModelServing) -> ModelConfig {
    let serving = model.serving();
    let tensor = |spec: &TensorSpec| TensorConfig {
        name: spec.name.clone(),
        data_type: triton_type(spec.dtype),
        dims: spec
            .item_dims
            .iter()
            .map(|d| d.map_or(-1, |d| d as i64))
            .collect(),
    };
    let signature = model.signature();
    ModelConfig {
        name: name.to_owned(),
        platform: "onnxruntime_onnx",
        backend: "onnxruntime",
        max_batch_size: u32::try_from(serving.batch_size()).unwrap_or(u32::MAX),
        inputs: signature.inputs.iter().map(tensor).collect(),
        outputs: signature.outputs.iter().map(tensor).collect(),
        max_queue_delay: match serving.policy() {
            Policy::Timeout => serving.batch_timeout(),
            _ => Duration::ZERO,
        },
        instances: u32::try_from(serving.partitions()).unwrap_or(u32::MAX),
    }
}

impl ModelConfig {
    /// The configuration as Triton's JSON (`GET .../config`).
    pub fn to_json(&self) -> Value {
        let tensors = |tensors: &[TensorConfig]| {
            tensors
                .iter()
                .map(|t| json!({ "name": t.name, "data_type": t.data_type, "dims": t.dims }))
                .collect::<Vec<_>>()
        };
        json!({
            "name": self.name,
            "platform": self.platform,
            "backend": self.backend,
            "version_policy": { "latest": { "num_versions": 1 } },
            "max_batch_size": self.max_batch_size,
            "input": tensors(&self.inputs),
            "output": tensors(&self.outputs),
            "dynamic_batching": {
                "preferred_batch_size": [self.max_batch_size],
                "max_queue_delay_microseconds": self.max_queue_delay.as_micros() as u64,
                "preserve_ordering": true,
                "priority_levels": PRIORITY_LEVELS,
                "default_priority_level": 2,
            },
            "instance_group": [{
                "name": self.name,
                "kind": "KIND_CPU",
                "count": self.instances,
            }],
        })
    }
}

/// A count and the nanoseconds it took, as Triton's statistics pair them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timed {
    /// How many.
    pub count: u64,
    /// Their nanoseconds, added up.
    pub ns: u64,
}

impl Timed {
    fn new(count: u64, total: Duration) -> Self {
        Timed {
            count,
            ns: u64::try_from(total.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    fn to_json(self) -> Value {
        json!({ "count": self.count, "ns": self.ns })
    }
}

/// A model's statistics, as Triton reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStatistics {
    /// The name the model is served as.
    pub name: String,
    /// Milliseconds since the epoch of this snapshot while the model has
    /// run anything, else 0.
    pub last_inference: u64,
    /// Items run (Triton counts a request of N as N inferences).
    pub inference_count: u64,
    /// Batches run.
    pub execution_count: u64,
    /// Requests answered, with the time they spent in the serving (queued
    /// and computing; parsing the request is not counted).
    pub success: Timed,
    /// Requests that failed in the serving: their batch's error or panic,
    /// a deadline, a shutdown.
    pub fail: Timed,
    /// Items' waits in the queue.
    pub queue: Timed,
    /// Items' share of their batches' runs: as Triton counts it, one per
    /// item, each with its whole batch's time (so its mean is what one
    /// item waited on the model). perf_analyzer reads this per request.
    pub compute_infer: Timed,
    /// Per batch size: batches of that size and their runs.
    pub batches: Vec<(u64, Timed)>,
}

/// The statistics of the model served as `name`.
pub fn model_statistics(name: &str, model: &ModelServing) -> ModelStatistics {
    let stats = model.serving().stats();
    let queue = Timed::new(stats.queue_wait.count, stats.queue_wait.total);
    // Every item of a batch waited the batch's whole run.
    let item_weighted: Duration = stats
        .batch_sizes
        .iter()
        .map(|b| {
            b.execution
                .saturating_mul(u32::try_from(b.size).unwrap_or(u32::MAX))
        })
        .sum();
    let compute = Timed::new(stats.items, item_weighted);
    ModelStatistics {
        name: name.to_owned(),
        last_inference: if stats.batches == 0 {
            0
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        },
        inference_count: stats.items,
        execution_count: stats.batches,
        success: Timed {
            count: stats.answered,
            ns: queue.ns.saturating_add(compute.ns),
        },
        fail: Timed {
            count: stats.failed_calls + stats.panicked_calls + stats.expired + stats.closed,
            ns: 0,
        },
        queue,
        compute_infer: compute,
        batches: stats
            .batch_sizes
            .iter()
            .map(|b| (b.size as u64, Timed::new(b.batches, b.execution)))
            .collect(),
    }
}

impl ModelStatistics {
    /// The input and output copies, which this server does not time apart
    /// from the run: counted as the runs are (perf_analyzer stops when the
    /// three counts differ), with no time.
    pub fn untimed(&self) -> Timed {
        Timed {
            count: self.compute_infer.count,
            ns: 0,
        }
    }

    /// One model's entry in Triton's statistics JSON.
    pub fn to_json(&self) -> Value {
        let zero = Timed::default().to_json();
        json!({
            "name": self.name,
            "version": VERSION,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_json(),
                "fail": self.fail.to_json(),
                "queue": self.queue.to_json(),
                "compute_input": self.untimed().to_json(),
                "compute_infer": self.compute_infer.to_json(),
                "compute_output": self.untimed().to_json(),
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": self.batches.iter().map(|(size, run)| json!({
                "batch_size": size,
                "compute_input": Timed { count: run.count, ns: 0 }.to_json(),
                "compute_infer": run.to_json(),
                "compute_output": Timed { count: run.count, ns: 0 }.to_json(),
            })).collect::<Vec<_>>(),
            "memory_usage": [],
        })
    }
}

/// The protocol's request priority as the serving's: 1 is the highest of
/// [`PRIORITY_LEVELS`], 0 the default.
///
/// # Errors
///
/// A message for the client for a level the server does not have.
pub fn priority_of(level: u64) -> Result<batch_serving::Priority, String> {
    use batch_serving::Priority;
    match level {
        0 | 2 => Ok(Priority::Normal),
        1 => Ok(Priority::High),
        3 => Ok(Priority::Low),
        other => Err(format!(
            "priority {other} is not served: levels are 1 (highest) to {PRIORITY_LEVELS}, and 0 for the default"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_levels_map_highest_first_and_refuse_others() {
        use batch_serving::Priority;
        assert_eq!(priority_of(0), Ok(Priority::Normal));
        assert_eq!(priority_of(1), Ok(Priority::High));
        assert_eq!(priority_of(3), Ok(Priority::Low));
        assert!(priority_of(4).is_err());
    }

    #[test]
    fn a_config_names_its_tensors_without_the_batch_axis() {
        let config = ModelConfig {
            name: "m".to_owned(),
            platform: "onnxruntime_onnx",
            backend: "onnxruntime",
            max_batch_size: 16,
            inputs: vec![TensorConfig {
                name: "input".to_owned(),
                data_type: "TYPE_FP32",
                dims: vec![3, 224, 224],
            }],
            outputs: vec![],
            max_queue_delay: Duration::from_millis(5),
            instances: 2,
        };
        let json = config.to_json();
        assert_eq!(json["input"][0]["dims"], json!([3, 224, 224]));
        assert_eq!(
            json["dynamic_batching"]["max_queue_delay_microseconds"],
            5000
        );
        assert_eq!(json["instance_group"][0]["count"], 2);
    }
}
