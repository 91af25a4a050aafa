//! Colours as people pick them (`#rrggbb`, sRGB) turned into the linear RGB
//! every renderer and scene model works in.

/// Parses `#rrggbb` into linear RGB, as the browser's sRGB colour would look.
pub fn colour_from_hex(hex: &str) -> Option<[f32; 3]> {
    let digits = hex.strip_prefix('#').filter(|d| d.len() == 6)?;
    let channel = |i: usize| u8::from_str_radix(&digits[i..i + 2], 16).ok();
    let srgb = [channel(0)?, channel(2)?, channel(4)?];
    Some(srgb.map(|c| {
        let c = f32::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_colours_become_linear_rgb() {
        assert_eq!(colour_from_hex("#ffffff"), Some([1.0, 1.0, 1.0]));
        assert_eq!(colour_from_hex("#000000"), Some([0.0, 0.0, 0.0]));
        let mid = colour_from_hex("#808080").unwrap()[0];
        assert!((mid - 0.2158).abs() < 0.001, "{mid}");
        assert_eq!(colour_from_hex("red"), None);
        assert_eq!(colour_from_hex("#12345z"), None);
    }
}
