//! Bounded image decoding. Image bytes come from the network, and a few
//! hundred of them can declare an image of gigapixels, so nothing is
//! decoded before its declared size passes the limits below. The model sees
//! only 224 × 224 pixels, so JPEGs (most photos) are scaled down while they
//! decode, in the DCT, to the smallest size that still covers the resize:
//! a 16 000 × 10 000 JPEG then costs an eighth of each side.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::OrtError;

/// The short side after resizing. It lives with decoding, the earlier
/// stage, which scales a large JPEG down no further than this while it
/// decodes; pre-processing then resizes to it exactly.
pub const RESIZE_SHORT_SIDE: u32 = 256;

/// The largest width or height decoded.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most pixels (width × height, as the file declares them) decoded: a
/// 36-megapixel camera's photo (7 360 × 4 912) fits. A larger image is
/// refused before any pixel is decoded, whatever its byte size; decoded
/// whole, this many RGB pixels take 108 MB (a JPEG far less, being scaled).
pub const MAX_IMAGE_PIXELS: u64 = 36_000_000;

/// The most memory a decoder may allocate for one image.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Decodes JPEG or PNG bytes, refusing images beyond the limits before
/// decoding them. A JPEG comes back scaled by 1/2, 1/4 or 1/8 where its
/// short side stays at least [`RESIZE_SHORT_SIDE`].
///
/// # Errors
///
/// [`OrtError::Image`] for bytes that are not a decodable JPEG or PNG, or
/// an image over [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_PIXELS`].
pub fn decode_bounded(bytes: &[u8]) -> Result<DynamicImage, OrtError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(image_error)?;
    let image = match reader.format() {
        None => return Err(OrtError::Image("not a JPEG or PNG image".to_owned())),
        Some(ImageFormat::Jpeg) => match decode_jpeg_scaled(bytes)? {
            Some(image) => image,
            None => decode_whole(reader)?,
        },
        Some(_) => decode_whole(reader)?,
    };
    if image.width() == 0 || image.height() == 0 {
        return Err(OrtError::Image("the image is empty".to_owned()));
    }
    Ok(image)
}

fn limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// Refuses a declared size beyond the limits.
fn check_size(width: u32, height: u32) -> Result<(), OrtError> {
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(OrtError::Image(format!(
            "the image is {width} x {height}; the limit is {MAX_IMAGE_SIDE} pixels a side"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_IMAGE_PIXELS {
        return Err(OrtError::Image(format!(
            "the image is {width} x {height} ({pixels} pixels); the limit is {MAX_IMAGE_PIXELS} pixels"
        )));
    }
    Ok(())
}

/// Decodes with the `image` crate after checking the declared size.
fn decode_whole(mut reader: ImageReader<Cursor<&[u8]>>) -> Result<DynamicImage, OrtError> {
    reader.limits(limits());
    let decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height)?;
    DynamicImage::from_decoder(decoder).map_err(image_error)
}

/// Decodes a JPEG scaled in the DCT. `Ok(None)` for the rare colour types
/// (CMYK, 16-bit), and for JPEGs too small to scale, which the whole-image
/// path handles instead.
fn decode_jpeg_scaled(bytes: &[u8]) -> Result<Option<DynamicImage>, OrtError> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(MAX_DECODE_BYTES as usize);
    decoder.read_info().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| jpeg_error("no frame header"))?;
    let (width, height) = (info.width, info.height);
    check_size(u32::from(width), u32::from(height))?;
    let format = info.pixel_format;
    if !matches!(
        format,
        jpeg_decoder::PixelFormat::L8 | jpeg_decoder::PixelFormat::RGB24
    ) {
        return Ok(None);
    }
    let (wanted_width, wanted_height) = covering_size(width, height);
    if !halves_cover(width, height, wanted_width, wanted_height) {
        // Nothing to gain in the DCT: image's own JPEG decoder (zune-jpeg,
        // with SIMD) decodes a whole photo of this size faster, 3.0 ms
        // against 3.9 ms for the 512 x 430 sample.
        return Ok(None);
    }
    let (width, height) = decoder
        .scale(wanted_width, wanted_height)
        .map_err(jpeg_error)?;
    let pixels = decoder.decode().map_err(jpeg_error)?;
    let (width, height) = (u32::from(width), u32::from(height));
    let image = match format {
        jpeg_decoder::PixelFormat::L8 => {
            GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
        }
        _ => RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
    };
    image
        .map(Some)
        .ok_or_else(|| jpeg_error("the decoded pixels do not fill the image"))
}

/// Whether decoding at half size (the DCT's smallest step down) would
/// still cover the wanted size.
fn halves_cover(width: u16, height: u16, wanted_width: u16, wanted_height: u16) -> bool {
    width.div_ceil(2) >= wanted_width && height.div_ceil(2) >= wanted_height
}

/// The smallest size, in the image's aspect ratio, whose short side is
/// still the resize target: the decoder scales to at least this.
fn covering_size(width: u16, height: u16) -> (u16, u16) {
    let short = u32::from(width.min(height)).max(1);
    let target = RESIZE_SHORT_SIDE.min(short);
    let scaled = |side: u16| {
        let side = u32::from(side).saturating_mul(target).div_ceil(short);
        u16::try_from(side).unwrap_or(u16::MAX)
    };
    (scaled(width), scaled(height))
}

fn image_error(error: impl std::fmt::Display) -> OrtError {
    OrtError::Image(error.to_string())
}

fn jpeg_error(error: impl std::fmt::Display) -> OrtError {
    OrtError::Image(format!("invalid JPEG: {error}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
        });
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
            .unwrap();
        bytes
    }

    /// Rewrites a JPEG's frame header (SOF0) to declare another size.
    fn patch_jpeg_size(bytes: &mut [u8], width: u16, height: u16) {
        let at = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG has an SOF0 marker");
        // FF C0, length (2), precision (1), height (2), width (2).
        bytes[at + 5..at + 7].copy_from_slice(&height.to_be_bytes());
        bytes[at + 7..at + 9].copy_from_slice(&width.to_be_bytes());
    }

    #[test]
    fn only_a_jpeg_whose_half_still_covers_the_resize_takes_the_scaling_path() {
        // The 1280 x 720 sample decodes at 640 x 360; the 512 x 430 one
        // cannot shrink at all and takes the whole-image decoder.
        let (w, h) = covering_size(1280, 720);
        assert!(halves_cover(1280, 720, w, h));
        let (w, h) = covering_size(512, 430);
        assert!(!halves_cover(512, 430, w, h));
        let whole = decode_bounded(&jpeg(512, 430)).unwrap();
        assert_eq!((whole.width(), whole.height()), (512, 430));
    }

    #[test]
    fn a_large_jpeg_is_scaled_while_decoding_to_cover_the_resize() {
        let image = decode_bounded(&jpeg(2048, 1536)).unwrap();
        // 1536 / 4 = 384 is the smallest DCT scale at least 256 high.
        assert_eq!((image.width(), image.height()), (512, 384));
        let small = decode_bounded(&jpeg(300, 200)).unwrap();
        assert_eq!(
            (small.width(), small.height()),
            (300, 200),
            "nothing to save"
        );
    }

    #[test]
    fn a_jpeg_declaring_too_many_pixels_is_refused_before_decoding() {
        let mut bytes = jpeg(64, 64);
        patch_jpeg_size(&mut bytes, 16_000, 10_000);
        let error = decode_bounded(&bytes).unwrap_err().to_string();
        assert!(error.contains("160000000 pixels"), "{error}");
    }

    #[test]
    fn the_pixel_limit_is_inclusive_and_both_limits_are_checked() {
        assert!(check_size(6_000, 6_000).is_ok());
        assert!(check_size(6_000, 6_001).is_err());
        assert!(check_size(16_385, 1).is_err());
        assert!(check_size(16_384, 2_197).is_ok());
    }

    #[test]
    fn covering_sizes_keep_the_short_side_at_the_resize_target() {
        assert_eq!(covering_size(2048, 1536), (342, 256));
        assert_eq!(covering_size(1000, 4000), (256, 1024));
        assert_eq!(covering_size(100, 50), (100, 50), "never enlarged");
    }
}
