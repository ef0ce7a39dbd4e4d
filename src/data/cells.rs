//! Parsers for the cells of the Borg extracts: plain numbers, Python-dict text
//! (`{'cpus': 0.1, 'memory': None}`) and numpy-array text (`[1.2e-05 3.4\n 5.6]`).
//! They read exactly these forms, nothing more general: no evaluator runs on input text.

/// Why a cell could not be read; `reason` names the drop-count bucket used by `--on-bad-row skip`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CellError {
    NotUtf8,
    Malformed(String),
    NonFinite,
    Negative,
    /// Beyond [`MAX_NORMALISED`]: not a usage, limit or size the trace can hold.
    Implausible(f32),
}

/// The trace normalises usage, limits and sizes to the capacity of the cell's largest
/// machine (1.0). An instance runs on one machine, so none of its figures can exceed
/// that capacity: a larger value is a unit mix-up or corruption, not a measurement.
pub(crate) const MAX_NORMALISED: f32 = 1.0;

impl CellError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            CellError::NotUtf8 => "non-UTF-8 text",
            CellError::Malformed(_) => "malformed cell",
            CellError::NonFinite => "non-finite value",
            CellError::Negative => "negative value",
            CellError::Implausible(_) => "implausible value",
        }
    }

    pub(crate) fn why(&self) -> String {
        match self {
            CellError::NotUtf8 => "the bytes are not UTF-8".into(),
            CellError::Malformed(why) => why.clone(),
            CellError::NonFinite => "infinite values are not usage figures".into(),
            CellError::Negative => "usage, sizes and rates cannot be negative".into(),
            CellError::Implausible(v) => format!(
                "{v} is beyond {MAX_NORMALISED}, the largest machine's capacity to which the \
                 trace normalises usage, limits and sizes"
            ),
        }
    }
}

fn utf8(cell: &[u8]) -> Result<&str, CellError> {
    if cell.is_ascii() {
        // SAFETY: ASCII is valid UTF-8. Numeric cells are ASCII, and this word-at-a-time
        // check costs less than full validation on millions of short tokens.
        return Ok(unsafe { std::str::from_utf8_unchecked(cell) });
    }
    std::str::from_utf8(cell).map_err(|_| CellError::NotUtf8)
}

/// Text that means "no value": empty, Python's `None`, or NaN as pandas/numpy print it.
fn is_missing_token(t: &str) -> bool {
    t.is_empty() || t == "None" || t.eq_ignore_ascii_case("nan")
}

fn number_token(t: &str) -> Result<f32, CellError> {
    if is_missing_token(t) {
        return Ok(f32::NAN);
    }
    let v: f32 = t
        .parse()
        .map_err(|_| CellError::Malformed(format!("`{t}` is not a number")))?;
    if !v.is_finite() {
        return Err(CellError::NonFinite);
    }
    if v < 0.0 {
        return Err(CellError::Negative);
    }
    Ok(v)
}

/// A non-negative feature value; NaN when the cell is empty, `None` or `nan`.
pub(crate) fn parse_feature(cell: &[u8]) -> Result<f32, CellError> {
    number_token(utf8(cell)?.trim())
}

/// A usage, limit or size: a feature within `[0, MAX_NORMALISED]` (NaN passes as missing).
pub(crate) fn plausible(v: f32) -> Result<f32, CellError> {
    if v > MAX_NORMALISED {
        return Err(CellError::Implausible(v));
    }
    Ok(v)
}

/// A usage, limit or size cell; NaN when missing.
pub(crate) fn parse_usage(cell: &[u8]) -> Result<f32, CellError> {
    plausible(parse_feature(cell)?)
}

/// A CPU percentile of `instance_usage`: the trace writes -1 in every percentile of a
/// window without a CPU distribution, so exactly -1 means missing.
pub(crate) fn parse_percentile(cell: &[u8]) -> Result<f32, CellError> {
    let t = utf8(cell)?.trim();
    if t.parse::<f32>() == Ok(-1.0) {
        return Ok(f32::NAN);
    }
    plausible(number_token(t)?)
}

/// An unsigned integer read from a cell; `rounded` when the text was a float with fewer
/// significant digits than the integer (`1.68846E+11`): a spreadsheet kept only the
/// leading digits, so two ids that differed may now be equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Integer {
    pub(crate) value: u64,
    pub(crate) rounded: bool,
}

/// An unsigned integer identifier or timestamp; it must be present. An
/// integral float (`2.748E+11`, `300000000.0`, as a spreadsheet writes them)
/// is that integer; past 2^53 a float holds the id only as rounded.
pub(crate) fn parse_u64(cell: &[u8]) -> Result<Integer, CellError> {
    let t = utf8(cell)?.trim();
    if let Ok(value) = t.parse::<u64>() {
        return Ok(Integer {
            value,
            rounded: false,
        });
    }
    match t.parse::<f64>() {
        // u64::MAX as f64 rounds up to 2^64, so `<` keeps the cast in range.
        Ok(v) if v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64 => {
            let value = v as u64;
            let mantissa = t.split(['e', 'E']).next().unwrap_or(t);
            let significant = mantissa
                .bytes()
                .filter(u8::is_ascii_digit)
                .skip_while(|&d| d == b'0')
                .count();
            let digits = value.checked_ilog10().map_or(1, |l| l as usize + 1);
            Ok(Integer {
                value,
                // Zero has no significant digit to lose.
                rounded: value != 0 && (significant < digits || v > F64_EXACT_INTEGERS),
            })
        }
        _ => Err(CellError::Malformed(format!(
            "`{t}` is not an unsigned integer"
        ))),
    }
}

/// Past 2^53 consecutive integers are no longer all representable as f64.
const F64_EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !first.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !last.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// A number token inside a dict or array (usage records and CPU distributions, all
/// usage figures); only the token is checked for UTF-8.
fn number_bytes(token: &[u8]) -> Result<f32, CellError> {
    plausible(number_token(utf8(token)?)?)
}

fn unquote(key: &[u8]) -> Option<&[u8]> {
    match key {
        [b'\'', inner @ .., b'\''] | [b'"', inner @ .., b'"'] => Some(inner),
        _ => None,
    }
}

/// The form pandas writes for every row, `{'cpus': X, 'memory': Y}`, read without
/// splitting; anything else returns None and takes the general path.
fn canonical_dict(text: &[u8]) -> Option<Result<[f32; 2], CellError>> {
    let rest = text.strip_prefix(b"{'cpus': ")?;
    let comma = rest.iter().position(|&b| b == b',')?;
    let memory = rest[comma..]
        .strip_prefix(b", 'memory': ")?
        .strip_suffix(b"}")?;
    let cpus = number_bytes(trim(&rest[..comma]));
    Some(cpus.and_then(|cpus| Ok([cpus, number_bytes(trim(memory))?])))
}

/// `{'cpus': x, 'memory': y}` → `[cpus, memory]`, NaN for `None`, for a missing key and for an empty cell.
/// Works on bytes: the cells are ASCII, and only number tokens need to be text.
pub(crate) fn parse_usage_dict(cell: &[u8]) -> Result<[f32; 2], CellError> {
    let text = trim(cell);
    let mut out = [f32::NAN; 2];
    if text.is_empty() {
        return Ok(out);
    }
    if let Some(values) = canonical_dict(text) {
        return values;
    }
    let [b'{', inner @ .., b'}'] = text else {
        return Err(CellError::Malformed(
            "expected a dict `{'cpus': .., 'memory': ..}`".into(),
        ));
    };
    for entry in inner.split(|&b| b == b',') {
        let entry = trim(entry);
        if entry.is_empty() {
            continue;
        }
        let colon = entry.iter().position(|&b| b == b':').ok_or_else(|| {
            CellError::Malformed(format!(
                "`{}` is not `'key': value`",
                String::from_utf8_lossy(entry)
            ))
        })?;
        let key = trim(&entry[..colon]);
        let slot = match unquote(key) {
            Some(b"cpus") => 0,
            Some(b"memory") => 1,
            Some(other) => {
                return Err(CellError::Malformed(format!(
                    "unexpected key `{}` (expected 'cpus' and 'memory')",
                    String::from_utf8_lossy(other)
                )))
            }
            None => {
                return Err(CellError::Malformed(format!(
                    "dict key `{}` is not quoted",
                    String::from_utf8_lossy(key)
                )))
            }
        };
        out[slot] = number_bytes(trim(&entry[colon + 1..]))?;
    }
    Ok(out)
}

/// numpy-array text `[a b c ...]` (whitespace or commas between values, lines may wrap) into `out`;
/// an empty cell or `[]` fills `out` with NaN. Any other length is an error.
pub(crate) fn parse_array(cell: &[u8], out: &mut [f32]) -> Result<(), CellError> {
    let text = trim(cell);
    if text.is_empty() {
        out.fill(f32::NAN);
        return Ok(());
    }
    let [b'[', inner @ .., b']'] = text else {
        return Err(CellError::Malformed(
            "expected an array `[v1 v2 ...]`".into(),
        ));
    };
    let mut n = 0;
    for token in inner
        .split(|&b| b.is_ascii_whitespace() || b == b',')
        .filter(|t| !t.is_empty())
    {
        if n < out.len() {
            out[n] = number_bytes(token)?;
        }
        n += 1;
    }
    if n == 0 {
        out.fill(f32::NAN);
    } else if n != out.len() {
        return Err(CellError::Malformed(format!(
            "expected {} values or `[]`, found {n}",
            out.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_reads_values_none_and_empty() {
        let v = parse_usage_dict(b"{'cpus': 0.00466156005859375, 'memory': None}").unwrap();
        assert_eq!(v[0], 0.004_661_56_f32);
        assert!(v[1].is_nan());
        assert!(parse_usage_dict(b"").unwrap().iter().all(|x| x.is_nan()));
        assert_eq!(
            parse_usage_dict(b"{'cpus': 1e-05, 'memory': 0.25}").unwrap(),
            [1e-5, 0.25]
        );
        assert_eq!(
            parse_usage_dict(b"{'cpus': 0.5, 'memory': 1e30}"),
            Err(CellError::Implausible(1e30))
        );
        assert!(matches!(
            parse_usage_dict(b"{'cpus': 1, 'disk': 2}"),
            Err(CellError::Malformed(_))
        ));
        assert_eq!(
            parse_usage_dict(b"{'cpus': -1, 'memory': 2}"),
            Err(CellError::Negative)
        );
        assert_eq!(
            parse_usage_dict(b"{'cpus': inf, 'memory': 2}"),
            Err(CellError::NonFinite)
        );
        assert!(parse_usage_dict(b"{'cpus': 1").is_err());
        // The canonical fast path and the general path agree.
        for text in [
            &b"{'cpus': 0.5, 'memory': None}"[..],
            b"{'cpus': 0.5 , 'memory':  2e-3}",
            b"{ 'cpus': 0.5, 'memory': 2e-3 }",
            b"{'memory': 2e-3, 'cpus': 0.5}",
            b"{\"cpus\": 0.5, \"memory\": 2e-3}",
        ] {
            let v = parse_usage_dict(text).unwrap();
            assert_eq!(v[0], 0.5, "{}", String::from_utf8_lossy(text));
        }
        assert!(parse_usage_dict(b"{'cpus': 0.5, 'memory': 1, 'disk': 2}").is_err());
        assert!(parse_usage_dict(b"{'cpus': 0.5, 'memory': x}").is_err());
    }

    #[test]
    fn array_reads_wrapped_lines_and_empty() {
        let mut out = [0.0f32; 3];
        parse_array(b"[1.23977661e-05 0.2\n 0.35]", &mut out).unwrap();
        assert_eq!(out, [1.239_776_6e-5, 0.2, 0.35]);
        parse_array(b"[]", &mut out).unwrap();
        assert!(out.iter().all(|x| x.is_nan()));
        assert!(parse_array(b"[1 2]", &mut out).is_err());
        assert!(parse_array(b"[1 2 3 4]", &mut out).is_err());
        assert!(parse_array(b"1 2 3", &mut out).is_err());
        assert_eq!(
            parse_array(b"[0.1 7 0.3]", &mut out),
            Err(CellError::Implausible(7.0))
        );
        assert_eq!(
            parse_array(b"[1 x 3]", &mut out).unwrap_err().reason(),
            "malformed cell"
        );
    }

    #[test]
    fn numbers_reject_text_inf_negative_and_bad_utf8() {
        assert!(parse_feature(b"").unwrap().is_nan());
        assert!(parse_feature(b"NaN").unwrap().is_nan());
        assert_eq!(parse_feature(b" 0.25 ").unwrap(), 0.25);
        assert_eq!(parse_feature(b"inf"), Err(CellError::NonFinite));
        assert_eq!(parse_feature(b"-0.5"), Err(CellError::Negative));
        assert_eq!(parse_feature(b"\xff0.5"), Err(CellError::NotUtf8));
        assert!(parse_percentile(b"-1.0").unwrap().is_nan());
        assert_eq!(parse_percentile(b"-0.5"), Err(CellError::Negative));
        assert_eq!(parse_percentile(b"0.5").unwrap(), 0.5);
        assert_eq!(parse_percentile(b"1.5"), Err(CellError::Implausible(1.5)));
        assert_eq!(parse_usage(b"1.0").unwrap(), 1.0);
        assert_eq!(
            parse_usage(b"1e30").unwrap_err().reason(),
            "implausible value"
        );
        // Features that are not usage (CPI, priority) have no upper bound.
        assert_eq!(parse_feature(b"12.5").unwrap(), 12.5);
        assert!(parse_u64(b"12a").is_err());
        // Spreadsheet forms of integers are integers; fractions and signs are not.
        let read = |t: &[u8]| {
            let i = parse_u64(t).unwrap();
            (i.value, i.rounded)
        };
        assert_eq!(read(b"2.748E+11"), (274_800_000_000, true));
        assert_eq!(read(b" 2.51731E+12 "), (2_517_310_000_000, true));
        assert_eq!(read(b"300000000.0"), (300_000_000, false));
        assert_eq!(read(b"1.1500E+02"), (115, false));
        assert_eq!(read(b"0.0"), (0, false));
        assert_eq!(read(b"0.0000E+00"), (0, false));
        assert_eq!(read(b"1.0E+18"), (1_000_000_000_000_000_000, true));
        for bad in [&b"2.5"[..], b"-3", b"1e30", b"nan", b"inf", b""] {
            assert!(parse_u64(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(read(b"94591244395"), (94_591_244_395, false));
    }
}
