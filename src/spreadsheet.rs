//! CSV for spreadsheet software: every CSV the service writes goes through [`document`].
//!
//! Excel and LibreOffice run a cell that begins with `=`, `+`, `-` or `@` as a formula (and a
//! leading TAB or CR is stripped before that test, full-width `＝ ＋ － ＠` are read as their ASCII
//! twins in Japanese Excel), so a patient registered as `=HYPERLINK("http://…")` would become a
//! live link in a coordinator's sheet. Following the OWASP CSV-injection guidance, such a cell
//! is prefixed with a single quote, which makes the program show it as text, and every cell is
//! quoted so a separator or quote inside a value cannot end the cell early.

/// Characters that make a spreadsheet treat a cell as a formula when they come first.
const FORMULA_TRIGGERS: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// The cell as written: a leading formula character is neutralised with a single quote.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_TRIGGERS) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// A whole CSV document: UTF-8 with a BOM (so Excel reads Japanese correctly), CRLF line ends,
/// the header row, then the rows; every cell quoted and neutralised.
pub fn document<R, C>(headers: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator<Item = String>,
{
    let mut out = header(headers);
    out.push_str(&records(rows));
    out
}

/// The start of a CSV document written in parts (a download streamed as it is read): the BOM
/// and the header row. [`records`] writes the rows that follow, in as many parts as needed;
/// the parts together are exactly the [`document`] of all the rows.
pub fn header(headers: &[&str]) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&records([headers.iter().map(|h| h.to_string()).collect::<Vec<_>>()]));
    out
}

/// Rows of a CSV document, every cell quoted and neutralised, each ending in CRLF.
pub fn records<R, C>(rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator<Item = String>,
{
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail, and neither can a record of strings; a failure would only
    // lose rows, so it is logged rather than turned into a half-written answer.
    for row in rows {
        let cells: Vec<String> = row.into_iter().collect();
        if let Err(e) = writer.write_record(cells.iter().map(|c| neutralise(c).into_owned())) {
            tracing::error!(error = %e, "CSV row not written");
        }
    }
    let bytes =
        writer.into_inner().map_err(|e| tracing::error!(error = %e.error(), "CSV not finished")).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_neutralised() {
        let doc = document(
            &["氏名", "備考"],
            [vec!["a,b".to_string(), "say \"hi\"".to_string()], vec!["改行\nあり".to_string(), "川崎".to_string()]],
        );
        assert_eq!(doc, "\u{feff}\"氏名\",\"備考\"\r\n\"a,b\",\"say \"\"hi\"\"\"\r\n\"改行\nあり\",\"川崎\"\r\n");
        for (typed, written) in [
            ("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""),
            ("+1+1", "\"'+1+1\""),
            ("-2+3", "\"'-2+3\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\t=1", "\"'\t=1\""),
            ("\r=1", "\"'\r=1\""),
            ("＝１＋１", "\"'＝１＋１\""),
            ("＋1", "\"'＋1\""),
            ("－1", "\"'－1\""),
            ("＠x", "\"'＠x\""),
            ("川崎 =1", "\"川崎 =1\""),
        ] {
            let doc = document(&["x"], [vec![typed.to_string()]]);
            assert_eq!(doc, format!("\u{feff}\"x\"\r\n{written}\r\n"), "{typed:?}");
        }
    }

    #[test]
    fn a_document_in_parts_is_the_whole_document() {
        let rows = |r: std::ops::Range<i32>| r.map(|i| vec![format!("={i}"), "川崎".to_string()]).collect::<Vec<_>>();
        let mut parts = header(&["a", "b"]);
        parts.push_str(&records(rows(0..3)));
        parts.push_str(&records(rows(3..7)));
        assert_eq!(parts, document(&["a", "b"], rows(0..7)));
    }
}
