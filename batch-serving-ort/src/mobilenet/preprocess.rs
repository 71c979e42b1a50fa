//! ImageNet pre-processing: resize the short side to 256, centre-crop 224,
//! scale to 0..1, normalise with the ImageNet mean and std, lay out NCHW.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};
use ndarray::Array3;

use super::decode::RESIZE_SHORT_SIDE;
use crate::OrtError;

/// The side of the centre crop the model sees.
pub const CROP_SIZE: u32 = 224;
/// The ImageNet per-channel mean (RGB, on 0..1 pixels).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// The ImageNet per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The longest side kept, as a multiple of the short side, before resizing:
/// the model sees only the centre, and a 1 × 16 384 strip would otherwise
/// be resized to 256 × 4 194 304 pixels (3 GiB).
const MAX_ASPECT: u32 = 4;

/// Decodes JPEG or PNG bytes (within the limits of
/// [`decode_bounded`](super::decode_bounded)) and pre-processes them into a
/// `[3, 224, 224]` tensor.
///
/// # Errors
///
/// [`OrtError::Image`] for bytes that are not a decodable JPEG or PNG, or
/// an image beyond the decoding limits.
pub fn preprocess(bytes: &[u8]) -> Result<Array3<f32>, OrtError> {
    Ok(preprocess_image(&super::decode_bounded(bytes)?))
}

/// Pre-processes a decoded image into a `[3, 224, 224]` tensor.
///
/// ```
/// use batch_serving_ort::mobilenet::preprocess_image;
/// let red = image::RgbImage::from_pixel(300, 300, image::Rgb([255, 0, 0]));
/// let tensor = preprocess_image(&image::DynamicImage::ImageRgb8(red));
/// assert_eq!(tensor.shape(), &[3, 224, 224]);
/// assert!((tensor[[0, 0, 0]] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
/// ```
pub fn preprocess_image(image: &DynamicImage) -> Array3<f32> {
    let rgb = centre_within_aspect(image.to_rgb8());
    let resized = resize_short_side(&rgb, RESIZE_SHORT_SIDE);
    let left = (resized.width().saturating_sub(CROP_SIZE)) / 2;
    let top = (resized.height().saturating_sub(CROP_SIZE)) / 2;
    let side = CROP_SIZE as usize;
    Array3::from_shape_fn((3, side, side), |(channel, y, x)| {
        // Both sides are at least CROP_SIZE after resizing, so the crop fits.
        let pixel = resized.get_pixel(left + x as u32, top + y as u32);
        let value = f32::from(pixel[channel]) / 255.0;
        (value - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
    })
}

/// Crops the long side of an extreme strip to `MAX_ASPECT` times the
/// short side, around the centre. Ordinary photos are untouched; for a strip
/// the crop keeps far more than the centre square the model sees.
fn centre_within_aspect(image: RgbImage) -> RgbImage {
    let (width, height) = image.dimensions();
    let limit = width.min(height).max(1).saturating_mul(MAX_ASPECT);
    if width <= limit && height <= limit {
        return image;
    }
    let (w, h) = (width.min(limit), height.min(limit));
    image::imageops::crop_imm(&image, (width - w) / 2, (height - h) / 2, w, h).to_image()
}

/// Scales so the shorter side is `short`, keeping the aspect ratio; the longer
/// side never drops below `short`. An image already that size is kept as is.
fn resize_short_side(image: &RgbImage, short: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let scale = f64::from(short) / f64::from(width.min(height));
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).max(short);
    let (new_width, new_height) = (scaled(width), scaled(height));
    if (new_width, new_height) == (width, height) {
        return image.clone();
    }
    let mut resized = RgbImage::new(new_width, new_height);
    // Bilinear, as before (image's `Triangle`) and as PIL and torchvision
    // resize for ImageNet, with SIMD: a tenth of image's own time.
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    match Resizer::new().resize(image, &mut resized, &options) {
        Ok(()) => resized,
        // Both are RGB8 images of sizes above zero, which it always takes;
        // should a later version refuse one, image's own resize still serves.
        Err(_) => image::imageops::resize(
            image,
            new_width,
            new_height,
            image::imageops::FilterType::Triangle,
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn normalised(value: u8, channel: usize) -> f32 {
        (f32::from(value) / 255.0 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
    }

    #[test]
    fn solid_colour_gives_the_normalised_value_in_every_pixel() {
        let image = RgbImage::from_pixel(31, 17, image::Rgb([255, 128, 0]));
        let tensor = preprocess_image(&DynamicImage::ImageRgb8(image));
        assert_eq!(tensor.shape(), &[3, 224, 224]);
        for (channel, value) in [255u8, 128, 0].into_iter().enumerate() {
            let expected = normalised(value, channel);
            assert!(
                tensor
                    .index_axis(ndarray::Axis(0), channel)
                    .iter()
                    .all(|v| (v - expected).abs() < 1e-5)
            );
        }
        assert!(
            (tensor[[0, 5, 5]] - 2.248_908).abs() < 1e-5,
            "red 255 normalises to (1-0.485)/0.229"
        );
    }

    #[test]
    fn wide_image_is_centre_cropped_without_resizing_at_256_high() {
        // 512x256: already 256 on the short side, so only the crop applies.
        // Black left half, white right half: the crop spans x = 144..368, so
        // its columns 0..112 are black and 112..224 white.
        let image = RgbImage::from_fn(512, 256, |x, _| {
            if x < 256 {
                image::Rgb([0; 3])
            } else {
                image::Rgb([255; 3])
            }
        });
        let tensor = preprocess_image(&DynamicImage::ImageRgb8(image));
        for channel in 0..3 {
            assert!((tensor[[channel, 100, 111]] - normalised(0, channel)).abs() < 1e-6);
            assert!((tensor[[channel, 100, 112]] - normalised(255, channel)).abs() < 1e-6);
        }
    }

    #[test]
    fn tall_image_keeps_its_aspect_ratio() {
        // 100x400 becomes 256x1024: the crop's rows come from the middle,
        // where a horizontal stripe marks rows 380..644 of the resized image.
        let image = RgbImage::from_fn(100, 400, |_, y| {
            if (150..250).contains(&y) {
                image::Rgb([255; 3])
            } else {
                image::Rgb([0; 3])
            }
        });
        let tensor = preprocess_image(&DynamicImage::ImageRgb8(image));
        // The crop spans resized rows 400..624, all inside the stripe.
        assert!(
            tensor
                .index_axis(ndarray::Axis(0), 1)
                .iter()
                .all(|v| (v - normalised(255, 1)).abs() < 1e-5)
        );
    }

    #[test]
    fn png_and_grey_images_decode_to_rgb() {
        let grey = image::GrayImage::from_pixel(8, 8, image::Luma([64]));
        let mut png = Vec::new();
        DynamicImage::ImageLuma8(grey)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let tensor = preprocess(&png).unwrap();
        for channel in 0..3 {
            assert!((tensor[[channel, 0, 0]] - normalised(64, channel)).abs() < 1e-5);
        }
    }

    #[test]
    fn an_extreme_strip_is_cropped_before_resizing_and_keeps_its_centre() {
        // 10 x 10 000: resized as is it would be 256 x 256 000 pixels. The
        // crop keeps rows 4 980..5 020; the model's centre square sees about
        // rows 4 995.6..5 004.4 of those, so the white rows 4 998..5 002 sit
        // in its middle and its top row is black.
        let strip = RgbImage::from_fn(10, 10_000, |_, y| {
            image::Rgb([if (4_998..5_002).contains(&y) { 255 } else { 0 }; 3])
        });
        let tensor = preprocess_image(&DynamicImage::ImageRgb8(strip));
        assert_eq!(tensor.shape(), &[3, 224, 224]);
        assert!((tensor[[0, 112, 112]] - normalised(255, 0)).abs() < 1e-5);
        assert!((tensor[[0, 0, 112]] - normalised(0, 0)).abs() < 1e-5);
    }

    #[test]
    fn only_strips_beyond_four_to_one_are_cropped() {
        assert_eq!(
            centre_within_aspect(RgbImage::new(10, 10_000)).dimensions(),
            (10, 40)
        );
        assert_eq!(
            centre_within_aspect(RgbImage::new(16_384, 1)).dimensions(),
            (4, 1)
        );
        assert_eq!(
            centre_within_aspect(RgbImage::new(640, 160)).dimensions(),
            (640, 160)
        );
    }

    #[test]
    fn an_image_declaring_huge_dimensions_is_refused_before_decoding() {
        // A valid PNG header that declares 100 000 x 100 000 pixels.
        let mut png = Vec::new();
        DynamicImage::ImageLuma8(image::GrayImage::new(1, 1))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        // Keep the header chunk's checksum valid, so the size is what fails.
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let error = preprocess(&png).unwrap_err();
        assert!(error.to_string().contains("limit"), "{error}");
    }

    #[test]
    fn a_png_within_the_side_limit_but_over_the_pixel_limit_is_refused() {
        // The reported bomb: 16 384 x 8 192 passes the side limit, and
        // decoding it took 1.47 s and 906 MB.
        let mut png = Vec::new();
        DynamicImage::ImageLuma8(image::GrayImage::new(1, 1))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png[16..20].copy_from_slice(&16_384u32.to_be_bytes());
        png[20..24].copy_from_slice(&8_192u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let error = preprocess(&png).unwrap_err().to_string();
        assert!(error.contains("134217728 pixels"), "{error}");
    }

    #[test]
    fn a_jpeg_scaled_while_decoding_gives_nearly_the_tensor_of_a_whole_decode() {
        let photo = RgbImage::from_fn(1600, 1200, |x, y| {
            let wave = ((x as f32 / 40.0).sin() * 60.0 + (y as f32 / 25.0).cos() * 60.0) as i32;
            image::Rgb([(128 + wave) as u8, (x / 8) as u8, (y / 6) as u8])
        });
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(photo)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let whole = preprocess_image(&image::load_from_memory(&jpeg).unwrap());
        let scaled = preprocess(&jpeg).unwrap();
        let diffs: Vec<f32> = whole
            .iter()
            .zip(&scaled)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        // One step of 8-bit pixel value is 0.017 after normalising.
        assert!(mean < 0.05, "mean difference {mean}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn corrupt_and_non_image_bytes_are_clear_errors() {
        let text = preprocess(b"hello, not an image").unwrap_err();
        assert!(text.to_string().contains("not a JPEG or PNG"), "{text}");
        let truncated = preprocess(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F']).unwrap_err();
        assert!(matches!(truncated, OrtError::Image(_)), "{truncated}");
        assert!(matches!(preprocess(&[]).unwrap_err(), OrtError::Image(_)));
    }
}
