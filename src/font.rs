//! plotters draws text only with a registered font, and its ab_glyph backend
//! bundles none: DejaVu Sans (Bitstream Vera licence, assets/DejaVuSans-LICENSE.txt)
//! is embedded so every chart has its labels on a machine without system fonts.

use plotters::style::FontStyle;
use std::sync::OnceLock;

/// The family name every chart asks for.
pub const FAMILY: &str = "sans-serif";

const DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font once per process; `false` if plotters refused it.
pub fn ensure_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    })
}
