//! A QR code drawn as SVG on the server (for the `otpauth://` address of two-factor enrolment),
//! so the secret never leaves this server for an image service and the page needs no script.

use qrcode::{Color, QrCode};

use crate::error::{AppError, AppResult};

/// Modules of quiet zone around the code, as the QR standard asks.
const QUIET: usize = 4;

/// The QR code of `data` as an `<svg>` element: one path of dark modules on white, with a
/// title naming it for screen readers. Only numbers and `title` (escaped) go into the markup.
pub fn svg(data: &str, title: &str) -> AppResult<String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| AppError::internal(format!("qr code: {e}")))?;
    let width = code.width();
    let size = width + 2 * QUIET;
    let mut path = String::new();
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color == Color::Dark {
            let (x, y) = (i % width + QUIET, i / width + QUIET);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let title = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" class=\"qr\" role=\"img\" \
aria-labelledby=\"qr-title\" shape-rendering=\"crispEdges\"><title id=\"qr-title\">{title}</title>\
<rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_code_with_its_quiet_zone() {
        let svg =
            svg("otpauth://totp/Renkei%20Note:a%40example.jp?secret=JBSWY3DPEHPK3PXP", "QR <code>").unwrap_or_default();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("QR &lt;code&gt;"));
        // Version 4 (33 modules) or so, plus 8 of quiet zone.
        assert!(svg.contains("viewBox=\"0 0 "), "{svg}");
        assert!(svg.matches('M').count() > 100, "dark modules drawn");
    }
}
