//! Compressed request bodies: `Content-Encoding: gzip` or `deflate` (zlib),
//! as tritonclient sends them with `request_compression_algorithm`. A body
//! is inflated up to the server's body limit and no further, so a small
//! body that would inflate to gigabytes (a decompression bomb) costs at most
//! the limit in memory and gets 413.

use std::borrow::Cow;
use std::io::Read;

use axum::http::{HeaderMap, StatusCode, header};
use flate2::read::{MultiGzDecoder, ZlibDecoder};

/// The body as sent, or inflated.
///
/// # Errors
///
/// The status and message for the client: 415 for an encoding the server
/// does not read, 400 for a body that is not what its encoding says, 413
/// for one that inflates past `limit` bytes.
pub fn inflate<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, (StatusCode, String)> {
    let Some(encoding) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Cow::Borrowed(body));
    };
    let encoding = encoding.to_str().unwrap_or("").trim().to_ascii_lowercase();
    let reader: Box<dyn Read + 'a> = match encoding.as_str() {
        "" | "identity" => return Ok(Cow::Borrowed(body)),
        "gzip" | "x-gzip" => Box::new(MultiGzDecoder::new(body)),
        "deflate" => Box::new(ZlibDecoder::new(body)),
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding `{other}` is not read here; send gzip, deflate or none"),
            ));
        }
    };
    let mut inflated = Vec::new();
    // One byte past the limit tells an over-large body from one that fits.
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(bound).read_to_end(&mut inflated).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body is not valid {encoding}: {e}"),
        )
    })?;
    if inflated.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body inflates past the limit of {limit} bytes"),
        ));
    }
    Ok(Cow::Owned(inflated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use std::io::Write;

    fn headers(encoding: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        headers
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap_or_default();
        encoder.finish().unwrap_or_default()
    }

    #[test]
    fn gzip_and_deflate_bodies_are_read_as_sent_and_plain_ones_are_not_copied() {
        let body = b"{\"inputs\": []}";
        let compressed = gzip(body);
        let inflated = inflate(&headers("gzip"), &compressed, 1024);
        assert_eq!(inflated.as_deref().ok(), Some(&body[..]));
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(body).unwrap_or_default();
        let deflated = zlib.finish().unwrap_or_default();
        assert_eq!(
            inflate(&headers("deflate"), &deflated, 1024)
                .as_deref()
                .ok(),
            Some(&body[..])
        );
        assert!(matches!(
            inflate(&HeaderMap::new(), body, 1024),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_bad_encodings_are_refused() {
        // 64 MiB of zeros gzip to about 64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let refused = inflate(&headers("gzip"), &bomb, 1 << 20).err();
        assert_eq!(
            refused.map(|(status, _)| status),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        let garbage = inflate(&headers("gzip"), b"not gzip", 1024).err();
        assert_eq!(
            garbage.map(|(status, _)| status),
            Some(StatusCode::BAD_REQUEST)
        );
        let unknown = inflate(&headers("br"), b"x", 1024).err();
        assert_eq!(
            unknown.map(|(status, _)| status),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }
}
