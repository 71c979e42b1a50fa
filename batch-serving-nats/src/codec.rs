//! How items and outputs become message payloads.
//!
//! A one-item call's payload is the item itself; a many-item call's is a
//! sequence. [`MsgPack`] writes the sequence as a MessagePack array, so a
//! Python caller writes `msgpack.packb([1, 2, 3])`. [`RawBytes`] passes
//! bytes through untouched (JPEG bodies, tensors) and frames a sequence as
//! `u32` big-endian lengths, each followed by its bytes.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A payload that could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Turns values of `T` into payload bytes and back.
///
/// The name goes into every request and reply, so a node and a caller that
/// disagree about the codec get a clear error instead of a misparse.
pub trait Codec<T>: Send + Sync + 'static {
    /// A short name for the `BS-Codec` header.
    fn name(&self) -> &'static str;
    /// Writes one value.
    fn encode(&self, value: &T) -> Result<Vec<u8>, CodecError>;
    /// Reads one value.
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;

    /// Writes a sequence. The default frames each value with its `u32`
    /// big-endian length.
    fn encode_many(&self, values: &[T]) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        for value in values {
            let bytes = self.encode(value)?;
            let len = u32::try_from(bytes.len())
                .map_err(|_| CodecError("a value is larger than 4 GiB".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Reads a sequence written by [`encode_many`](Self::encode_many).
    /// Lengths are checked against the bytes that are there, so a hostile
    /// frame cannot make it allocate more than the payload holds.
    fn decode_many(&self, mut bytes: &[u8]) -> Result<Vec<T>, CodecError> {
        let mut values = Vec::new();
        while !bytes.is_empty() {
            let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
                return Err(CodecError("truncated length frame".into()));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if rest.len() < len {
                return Err(CodecError(format!(
                    "frame of {len} bytes with only {} left",
                    rest.len()
                )));
            }
            let (value, rest) = rest.split_at(len);
            values.push(self.decode(value)?);
            bytes = rest;
        }
        Ok(values)
    }
}

/// MessagePack through serde, for any `Serialize + DeserializeOwned` type.
/// Structs are written as maps with field names, so other languages read
/// them by name, and adding a field does not break an older reader.
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Codec<T> for MsgPack {
    fn name(&self) -> &'static str {
        "msgpack"
    }

    fn encode(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        rmp_serde::to_vec_named(value).map_err(|e| CodecError(e.to_string()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
    }

    fn encode_many(&self, values: &[T]) -> Result<Vec<u8>, CodecError> {
        rmp_serde::to_vec_named(values).map_err(|e| CodecError(e.to_string()))
    }

    fn decode_many(&self, bytes: &[u8]) -> Result<Vec<T>, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
    }
}

/// Bytes as they are: no serde pass over an image body or a tensor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl Codec<Vec<u8>> for RawBytes {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn encode(&self, value: &Vec<u8>) -> Result<Vec<u8>, CodecError> {
        Ok(value.clone())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

impl Codec<Bytes> for RawBytes {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn encode(&self, value: &Bytes) -> Result<Vec<u8>, CodecError> {
        Ok(value.to_vec())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Bytes, CodecError> {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Pair {
        label: String,
        score: f32,
    }

    #[test]
    fn msgpack_round_trips_one_and_many() {
        let one = Pair {
            label: "cat".into(),
            score: 0.5,
        };
        let bytes = Codec::<Pair>::encode(&MsgPack, &one).unwrap();
        assert_eq!(Codec::<Pair>::decode(&MsgPack, &bytes).unwrap(), one);
        let many = vec![3u32, 4, 5];
        let bytes = MsgPack.encode_many(&many).unwrap();
        // A MessagePack fixarray of three positive fixints: what any
        // msgpack library writes for [3, 4, 5].
        assert_eq!(bytes, [0x93, 3, 4, 5]);
        assert_eq!(Codec::<u32>::decode_many(&MsgPack, &bytes).unwrap(), many);
    }

    #[test]
    fn msgpack_refuses_the_wrong_type() {
        let bytes = Codec::<String>::encode(&MsgPack, &"text".to_string()).unwrap();
        assert!(Codec::<u32>::decode(&MsgPack, &bytes).is_err());
        assert!(Codec::<u32>::decode(&MsgPack, b"\xc1garbage").is_err());
    }

    #[test]
    fn raw_frames_round_trip_and_hostile_frames_fail() {
        let items = vec![b"abc".to_vec(), Vec::new(), vec![0xff; 300]];
        let framed = RawBytes.encode_many(&items).unwrap();
        assert_eq!(&framed[..7], &[0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(
            Codec::<Vec<u8>>::decode_many(&RawBytes, &framed).unwrap(),
            items
        );
        // A length far past the payload is an error, not an allocation.
        let lying = [0xff, 0xff, 0xff, 0xff, 1, 2];
        assert!(Codec::<Vec<u8>>::decode_many(&RawBytes, &lying).is_err());
        assert!(Codec::<Vec<u8>>::decode_many(&RawBytes, &[0, 0]).is_err());
        assert!(
            Codec::<Vec<u8>>::decode_many(&RawBytes, &[])
                .unwrap()
                .is_empty()
        );
    }
}
