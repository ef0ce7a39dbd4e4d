//! Axis tick labels people read at a glance: `0.25`, `12`, `3.5e-5`, never
//! `1.200e0`.

/// At most `digits` significant digits, trailing zeros dropped; scientific
/// notation only below 1e-3 or from 1e5 on.
pub fn label(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else {
            trim(format!("{v}"))
        };
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-3..5).contains(&magnitude) {
        let s = format!("{:.*e}", digits.saturating_sub(1), v);
        let (mantissa, exp) = s.split_once('e').expect("scientific format");
        return format!("{}e{exp}", trim(mantissa.to_string()));
    }
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    trim(format!("{v:.decimals$}"))
}

fn trim(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    let t = s.trim_end_matches('0').trim_end_matches('.');
    if t == "-0" {
        "0".into()
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn readable_ticks() {
        assert_eq!(label(1.2, 3), "1.2");
        assert_eq!(label(1.0, 3), "1");
        assert_eq!(label(0.25, 3), "0.25");
        assert_eq!(label(12.0, 3), "12");
        assert_eq!(label(0.0, 3), "0");
        assert_eq!(label(3.5e-5, 3), "3.5e-5");
        assert_eq!(label(1.23456e-4, 3), "1.23e-4");
        assert_eq!(label(250000.0, 3), "2.5e5");
        assert_eq!(label(0.0378512, 3), "0.0379");
        assert_eq!(label(-0.5, 2), "-0.5");
    }
}
