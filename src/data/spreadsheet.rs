//! A trace as a spreadsheet re-saves it: every plain number cell rewritten the way
//! Excel or LibreOffice write a CSV back out. Integers become `d.ddddE+nn` (five
//! significant digits: ids and microsecond timestamps lose their tail), other numbers
//! keep nine significant digits. Text cells (dicts, arrays, names) are left as they
//! are. `data synth --spreadsheet` and the tests use it to make the files users meet.

use super::DataError;
use std::path::Path;

/// Rewrites the number cells of CSV text (header kept); `label` names it in errors.
pub fn resave(csv_text: &[u8], label: &Path) -> Result<Vec<u8>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv_text);
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(csv_text.len()));
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(super::record_error(label, e)),
        }
        let cells = record.iter().map(|cell| match spreadsheet_number(cell) {
            Some(number) if !first => number,
            _ => cell.to_string(),
        });
        writer
            .write_record(cells)
            .map_err(|e| DataError::Invalid(format!("{}: {e}", label.display())))?;
        first = false;
    }
    writer
        .into_inner()
        .map_err(|e| DataError::Invalid(format!("{}: {e}", label.display())))
}

/// The cell as a spreadsheet writes it back, or None for a cell that is not a number.
fn spreadsheet_number(cell: &str) -> Option<String> {
    if let Ok(v) = cell.parse::<u64>() {
        return Some(scientific(v as f64, 4));
    }
    let v: f64 = cell.parse().ok()?;
    // A spreadsheet keeps text it does not read as a number: `inf`, ` 0.5`.
    if !v.is_finite() || cell.trim() != cell {
        return None;
    }
    let exponent = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    if (-5..10).contains(&exponent) {
        // Nine significant digits in plain notation, trailing zeros dropped.
        let decimals = (8 - exponent).max(0) as usize;
        let text = format!("{v:.decimals$}");
        let text = match text.contains('.') {
            true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
            false => text,
        };
        Some(text)
    } else {
        Some(scientific(v, 8))
    }
}

/// `d.dddE+nn` with `decimals` digits after the point, as spreadsheets write exponents.
fn scientific(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$E}");
    match text.split_once('E') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}E+{exp:0>2}"),
        Some((mantissa, exp)) => format!("{mantissa}E-{:0>2}", &exp[1..]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rewritten_as_a_spreadsheet_does_and_text_is_kept() {
        for (number, shown) in [
            ("168846390496", "1.6885E+11"),
            ("2517305308183", "2.5173E+12"),
            ("115", "1.1500E+02"),
            ("0", "0.0000E+00"),
            ("0.00466156005859375", "0.00466156006"),
            ("0.9399186372756958", "0.939918637"),
            ("1.23977661e-05", "0.0000123977661"),
            ("9.5367431640625e-07", "9.53674316E-07"),
            ("1.0", "1"),
        ] {
            assert_eq!(
                spreadsheet_number(number).as_deref(),
                Some(shown),
                "{number}"
            );
        }
        for text in [
            "",
            "None",
            "nan",
            "{'cpus': 0.1, 'memory': None}",
            "[1 2]",
            "FAIL",
        ] {
            assert_eq!(spreadsheet_number(text), None, "{text}");
        }
        let out = resave(
            b"a,b,c\n12345678,0.5,\"{'cpus': 0.25}\"\n",
            Path::new("t.csv"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,c\n1.2346E+07,0.5,{'cpus': 0.25}\n"
        );
    }
}
