//! ImageNet pre-processing: resize the short side to 256, centre-crop 224,
//! scale to 0..1, normalise with the ImageNet mean and std, lay out NCHW.

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, RgbImage};
use ndarray::Array3;

use crate::OrtError;

/// The short side after resizing.
pub const RESIZE_SHORT_SIDE: u32 = 256;
/// The side of the centre crop the model sees.
pub const CROP_SIZE: u32 = 224;
/// The ImageNet per-channel mean (RGB, on 0..1 pixels).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// The ImageNet per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes JPEG or PNG bytes and pre-processes them into a `[3, 224, 224]`
/// tensor.
///
/// # Errors
///
/// [`OrtError::Image`] for bytes that are not a decodable JPEG or PNG.
pub fn preprocess(bytes: &[u8]) -> Result<Array3<f32>, OrtError> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| OrtError::Image(e.to_string()))?;
    if reader.format().is_none() {
        return Err(OrtError::Image("not a JPEG or PNG image".to_owned()));
    }
    let image = reader
        .decode()
        .map_err(|e| OrtError::Image(e.to_string()))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(OrtError::Image("the image is empty".to_owned()));
    }
    Ok(preprocess_image(&image))
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
    let rgb = image.to_rgb8();
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
    image::imageops::resize(image, new_width, new_height, FilterType::Triangle)
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
    fn corrupt_and_non_image_bytes_are_clear_errors() {
        let text = preprocess(b"hello, not an image").unwrap_err();
        assert!(text.to_string().contains("not a JPEG or PNG"), "{text}");
        let truncated = preprocess(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F']).unwrap_err();
        assert!(matches!(truncated, OrtError::Image(_)), "{truncated}");
        assert!(matches!(preprocess(&[]).unwrap_err(), OrtError::Image(_)));
    }
}
