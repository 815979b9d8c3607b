//! The insurance numbers practice identifies a patient by (docs/domain.md, "Insurance
//! numbers"): the 介護保険 (long-term care insurance) 保険者番号 and 被保険者番号 on the 介護保険
//! 被保険者証, and the 医療保険 (medical insurance) 保険者番号, 記号・番号 and 枝番 on the health
//! insurance card. A hospital that admitted a patient has these in hand, so it can find the
//! patient's record with them (together with the birth date and the kana family name; see
//! `access::patient_for_new_case`).
//!
//! What is checked, and what is not:
//! - 医療保険 保険者番号: 8 digits (法別番号 2 + 都道府県番号 2 + 保険者別番号 3 + 検証番号 1), or
//!   6 digits for 国民健康保険 (no 法別番号), with its check digit ([`medical_check_digit`]).
//! - 介護保険 保険者番号: 6 digits, format only. No published rule for its check digit was found
//!   to cite, and a rule that is guessed would refuse real cards.
//! - 介護保険 被保険者番号: 10 digits, format only (it has no nationally defined check digit).
//! - 記号・番号・枝番: free text printed on the card (digits, letters, kana and kanji such as
//!   `川崎`), in a strict set of characters, stored in NFKC form so that full-width and
//!   half-width digits typed from the same card compare equal. Numbers are ASCII or full-width
//!   digits, stored as ASCII.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::api::Check;
use crate::db::schema::patient_insurance as pi;
use crate::db::{now, DbConn};
use crate::error::AppResult;

/// The check digit (検証番号) of a 医療保険 保険者番号 from the digits before it, as the Ministry of
/// Health, Labour and Welfare's 保険者番号等の設定要領 defines it: from the last digit going left,
/// multiply by 2, 1, 2, 1 …; add the digits of the products (12 counts as 1 + 2); the check
/// digit is 10 minus the last digit of the sum, and 0 when that last digit is 0. Worked
/// example: 3312001 → 6+3+2+2+0+0+2 = 15 → 10 − 5 = 5, so 33120015.
pub fn medical_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let p = u32::from(*d) * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// The digits of `s` when it is all digits, ASCII or full-width (`０`–`９`, as an IME types a
/// number read off a card); nothing else counts as a digit.
fn digits(s: &str) -> Option<Vec<u8>> {
    let d: Option<Vec<u8>> = s
        .chars()
        .map(|c| match c {
            '0'..='9' => Some(c as u8 - b'0'),
            '０'..='９' => Some((c as u32 - '０' as u32) as u8),
            _ => None,
        })
        .collect();
    d.filter(|d| !d.is_empty())
}

fn digits_text(d: &[u8]) -> String {
    d.iter().map(|d| char::from(b'0' + d)).collect()
}

/// Whether a 医療保険 保険者番号 is well formed: 8 digits, or 6 for 国民健康保険, with a valid
/// check digit.
pub fn valid_medical_insurer(number: &str) -> bool {
    match digits(number) {
        Some(d) if d.len() == 8 || d.len() == 6 => {
            let (body, check) = d.split_at(d.len() - 1);
            medical_check_digit(body) == check[0]
        }
        _ => false,
    }
}

/// A character allowed in 記号・番号・枝番 (after NFKC): ASCII letters and digits, a hyphen,
/// hiragana, katakana and kanji — what such cards print — and nothing else (no spaces,
/// punctuation, controls or invisible characters).
fn card_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '-'
        || ('\u{3041}'..='\u{3096}').contains(&c)
        || ('\u{30A1}'..='\u{30FA}').contains(&c)
        || c == 'ー'
        || ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

/// 記号・番号・枝番 as stored and compared: NFKC form.
pub fn card_text(s: &str) -> String {
    s.nfkc().collect()
}

/// The 介護保険 part: 保険者番号 and 被保険者番号.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LongTermCare {
    pub insurer_number: String,
    pub insured_number: String,
}

/// The 医療保険 part: 保険者番号, 記号 (absent on some cards), 番号 and 枝番 (on cards issued from
/// 2021 on).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Medical {
    pub insurer_number: String,
    pub symbol: Option<String>,
    pub number: String,
    pub branch: Option<String>,
}

/// A patient's insurance numbers, as sent and as answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Numbers {
    pub long_term_care: Option<LongTermCare>,
    pub medical: Option<Medical>,
}

fn card_field(check: &mut Check, field: &str, value: &str, max: usize) {
    let v = card_text(value);
    if v.is_empty() {
        check.push(field, "required", format!("{field} を入力してください。"), format!("{field} is required."));
    } else if v.chars().count() > max || !v.chars().all(card_char) {
        check.push(
            field,
            "invalid_characters",
            format!(
                "{field} は{max}文字以内の英数字・かな・漢字・ハイフンで入力してください(空白や記号は使えません)。"
            ),
            format!(
                "{field} must be at most {max} letters, digits, kana, kanji or hyphens (no spaces or other symbols)."
            ),
        );
    }
}

/// Checks a 介護保険 part; `prefix` names where it sits in the body.
pub fn check_long_term_care(check: &mut Check, prefix: &str, l: &LongTermCare) {
    let field = format!("{prefix}insurer_number");
    if digits(&l.insurer_number).is_none_or(|d| d.len() != 6) {
        check.push(
            &field,
            "invalid_insurer_number",
            format!("{field}(介護保険の保険者番号)は6桁の数字です。"),
            format!("{field} (the long-term care insurer number) is 6 digits."),
        );
    }
    let field = format!("{prefix}insured_number");
    if digits(&l.insured_number).is_none_or(|d| d.len() != 10) {
        check.push(
            &field,
            "invalid_insured_number",
            format!("{field}(介護保険の被保険者番号)は10桁の数字です。"),
            format!("{field} (the long-term care insured person's number) is 10 digits."),
        );
    }
}

/// Checks a 医療保険 part; `prefix` names where it sits in the body.
pub fn check_medical(check: &mut Check, prefix: &str, m: &Medical) {
    let field = format!("{prefix}insurer_number");
    match digits(&m.insurer_number) {
        Some(d) if d.len() == 8 || d.len() == 6 => {
            if !valid_medical_insurer(&m.insurer_number) {
                check.push(
                    &field,
                    "check_digit",
                    format!("{field}(医療保険の保険者番号)の検証番号(最後の桁)が合いません。保険証の番号をもう一度確かめてください。"),
                    format!("{field} (the medical insurer number) fails its check digit (the last digit). Check the number on the card again."),
                );
            }
        }
        _ => check.push(
            &field,
            "invalid_insurer_number",
            format!("{field}(医療保険の保険者番号)は8桁(国民健康保険は6桁)の数字です。"),
            format!("{field} (the medical insurer number) is 8 digits (6 for National Health Insurance)."),
        ),
    }
    if let Some(s) = &m.symbol {
        card_field(check, &format!("{prefix}symbol"), s, 20);
    }
    card_field(check, &format!("{prefix}number"), &m.number, 20);
    if let Some(b) = &m.branch {
        card_field(check, &format!("{prefix}branch"), b, 4);
    }
}

impl Numbers {
    pub fn check(&self, check: &mut Check) {
        if let Some(l) = &self.long_term_care {
            check_long_term_care(check, "long_term_care.", l);
        }
        if let Some(m) = &self.medical {
            check_medical(check, "medical.", m);
        }
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug, Clone)]
#[diesel(table_name = pi, treat_none_as_null = true)]
struct Row {
    patient_id: String,
    ltc_insurer_number: Option<String>,
    ltc_insured_number: Option<String>,
    medical_insurer_number: Option<String>,
    medical_symbol: Option<String>,
    medical_number: Option<String>,
    medical_branch: Option<String>,
    recorded_by: String,
    updated_at: NaiveDateTime,
    version: i32,
}

/// A patient's recorded numbers, when they were last recorded and their version (0 while none
/// were recorded, so a first `PUT` may name `If-Match: "0"`).
#[derive(Debug, Default)]
pub struct Recorded {
    pub numbers: Numbers,
    pub updated_at: Option<NaiveDateTime>,
    pub version: i32,
}

/// The stored form of a number: digits as ASCII, card text in NFKC.
fn stored_digits(s: &str) -> String {
    digits(s).map(|d| digits_text(&d)).unwrap_or_else(|| card_text(s))
}

/// A patient's recorded numbers (empty, version 0, when none were recorded).
pub fn of_patient(conn: &mut DbConn, patient_id: &str) -> AppResult<Recorded> {
    let row = pi::table.find(patient_id).select(Row::as_select()).first(conn).optional()?;
    let Some(r) = row else { return Ok(Recorded::default()) };
    let long_term_care = match (r.ltc_insurer_number, r.ltc_insured_number) {
        (Some(insurer_number), Some(insured_number)) => Some(LongTermCare { insurer_number, insured_number }),
        _ => None,
    };
    let medical = match (r.medical_insurer_number, r.medical_number) {
        (Some(insurer_number), Some(number)) => {
            Some(Medical { insurer_number, symbol: r.medical_symbol, number, branch: r.medical_branch })
        }
        _ => None,
    };
    Ok(Recorded { numbers: Numbers { long_term_care, medical }, updated_at: Some(r.updated_at), version: r.version })
}

/// Records a patient's numbers in place of version `expected` (0: none recorded yet), replacing
/// what was recorded (a part sent as null is removed); `None` when someone recorded them first.
/// The version is compared in the write itself, so two concurrent writers cannot both win.
pub fn record(
    conn: &mut DbConn,
    patient_id: &str,
    numbers: &Numbers,
    recorded_by: &str,
    expected: i32,
) -> AppResult<Option<Recorded>> {
    let ltc = numbers.long_term_care.as_ref();
    let med = numbers.medical.as_ref();
    let row = Row {
        patient_id: patient_id.to_string(),
        ltc_insurer_number: ltc.map(|l| stored_digits(&l.insurer_number)),
        ltc_insured_number: ltc.map(|l| stored_digits(&l.insured_number)),
        medical_insurer_number: med.map(|m| stored_digits(&m.insurer_number)),
        medical_symbol: med.and_then(|m| m.symbol.as_deref().map(card_text)),
        medical_number: med.map(|m| card_text(&m.number)),
        medical_branch: med.and_then(|m| m.branch.as_deref().map(card_text)),
        recorded_by: recorded_by.to_string(),
        updated_at: now(),
        version: expected + 1,
    };
    let written = if expected == 0 {
        crate::per_backend!(conn, |c| diesel::insert_into(pi::table)
            .values(&row)
            .on_conflict(pi::patient_id)
            .do_nothing()
            .execute(c))?
    } else {
        diesel::update(pi::table.filter(pi::patient_id.eq(patient_id)).filter(pi::version.eq(expected)))
            .set(&row)
            .execute(conn)?
    };
    if written == 0 {
        return Ok(None);
    }
    Ok(Some(of_patient(conn, patient_id)?))
}

/// The number a hospital identifies a patient by: one of the two kinds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    pub long_term_care: Option<LongTermCare>,
    pub medical: Option<IdentifierMedical>,
}

/// 医療保険 numbers identifying a patient: 保険者番号, 記号 (when the card has one) and 番号. The
/// 枝番 tells family members apart on one card but is not needed to find the card's holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentifierMedical {
    pub insurer_number: String,
    pub symbol: Option<String>,
    pub number: String,
}

impl Identifier {
    /// Checks the identifier; `prefix` names where it sits in the body.
    pub fn check(&self, check: &mut Check, prefix: &str) {
        match (&self.long_term_care, &self.medical) {
            (Some(l), None) => check_long_term_care(check, &format!("{prefix}long_term_care."), l),
            (None, Some(m)) => {
                let full = Medical {
                    insurer_number: m.insurer_number.clone(),
                    symbol: m.symbol.clone(),
                    number: m.number.clone(),
                    branch: None,
                };
                check_medical(check, &format!("{prefix}medical."), &full);
            }
            _ => check.push(
                prefix.trim_end_matches('.'),
                "one_of",
                format!(
                    "{}には long_term_care(介護保険)か medical(医療保険)のどちらか一方を指定してください。",
                    prefix.trim_end_matches('.')
                ),
                format!("Give {} either long_term_care or medical, not both.", prefix.trim_end_matches('.')),
            ),
        }
    }

    /// A key for the identification throttle: a hash of the normalised number, so that the
    /// budget of a number does not depend on how it was typed and nothing typed is stored.
    pub fn throttle_key(&self) -> String {
        let text = match (&self.long_term_care, &self.medical) {
            (Some(l), _) => format!("ltc:{}:{}", stored_digits(&l.insurer_number), stored_digits(&l.insured_number)),
            (None, Some(m)) => format!(
                "medical:{}:{}:{}",
                stored_digits(&m.insurer_number),
                m.symbol.as_deref().map(card_text).unwrap_or_default(),
                card_text(&m.number)
            ),
            (None, None) => String::new(),
        };
        crate::auth::tokens::sha256_hex(&format!("insurance:{text}"))
    }
}

/// The ids of the patients whose recorded numbers are this identifier's (superseded duplicates
/// included: the caller resolves them to the patient that replaced them).
pub fn patients_with(conn: &mut DbConn, id: &Identifier) -> AppResult<Vec<String>> {
    if let Some(l) = &id.long_term_care {
        return Ok(pi::table
            .filter(pi::ltc_insured_number.eq(stored_digits(&l.insured_number)))
            .filter(pi::ltc_insurer_number.eq(stored_digits(&l.insurer_number)))
            .select(pi::patient_id)
            .load(conn)?);
    }
    let Some(m) = &id.medical else { return Ok(Vec::new()) };
    let found: Vec<(String, Option<String>)> = pi::table
        .filter(pi::medical_insurer_number.eq(stored_digits(&m.insurer_number)))
        .filter(pi::medical_number.eq(card_text(&m.number)))
        .select((pi::patient_id, pi::medical_symbol))
        .load(conn)?;
    let symbol = m.symbol.as_deref().map(card_text).unwrap_or_default();
    Ok(found.into_iter().filter(|(_, s)| s.clone().unwrap_or_default() == symbol).map(|(id, _)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published insurer numbers: 33120015 (the worked example of the setting rules, 警察共済組合
    /// 千葉県支部) and 01040013 (全国健康保険協会 宮城支部, as its own site states).
    #[test]
    fn medical_check_digits_of_published_numbers() {
        for n in ["33120015", "01040013", "０１０４００１３"] {
            assert!(valid_medical_insurer(n), "{n}");
        }
        assert_eq!(medical_check_digit(&[3, 3, 1, 2, 0, 0, 1]), 5);
        for n in ["33120016", "01040012", "0104001", "010400133", "3312001a"] {
            assert!(!valid_medical_insurer(n), "{n}");
        }
        // 0500000: only the 5 counts, multiplied by 1 → 10 − 5 = 5.
        assert_eq!(medical_check_digit(&[0, 5, 0, 0, 0, 0, 0]), 5);
        // 0000019: 9 × 2 = 18 → 1 + 8 = 9, plus 1 × 1 → 10, last digit 0 → check digit 0 (not 10).
        assert_eq!(medical_check_digit(&[0, 0, 0, 0, 0, 1, 9]), 0);
    }

    #[test]
    fn card_text_is_strict() {
        for ok in ["川崎", "12345", "ア-12", "１２３"] {
            assert!(card_text(ok).chars().all(card_char), "{ok}");
        }
        for bad in ["12 34", "12\u{200b}34", "=1", "12/3", "a\nb"] {
            assert!(!card_text(bad).chars().all(card_char), "{bad:?}");
        }
    }
}
