//! What the console's pages say, in Japanese and in English, and dates as people write them.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::error::Lang;

/// The fixed words of the pages, one set per language.
pub struct Texts {
    pub lang: &'static str,
    pub service: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub totp_code: &'static str,
    pub totp_hint: &'static str,
    pub sign_in_failed: &'static str,
    pub locked: &'static str,
    pub my_page: &'static str,
    pub my_flags: &'static str,
    pub no_flags: &'static str,
    pub my_tasks: &'static str,
    pub no_tasks: &'static str,
    pub unread_notes: &'static str,
    pub no_unread: &'static str,
    pub overdue: &'static str,
    pub due: &'static str,
    pub patient: &'static str,
    pub severity: &'static str,
    pub raised_at: &'static str,
    pub reason: &'static str,
    pub status: &'static str,
    pub age: &'static str,
    pub years: &'static str,
    pub care_level: &'static str,
    pub consent: &'static str,
    pub team: &'static str,
    pub lead: &'static str,
    pub flags: &'static str,
    pub acknowledge: &'static str,
    pub acknowledge_note: &'static str,
    pub acknowledged: &'static str,
    pub vitals: &'static str,
    pub vitals_none: &'static str,
    pub timeline: &'static str,
    pub older: &'static str,
    pub newest: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub forbidden_title: &'static str,
    pub forbidden_body: &'static str,
    pub error_title: &'static str,
    pub error_body: &'static str,
    pub back_to_my_page: &'static str,
    pub unread_count: &'static str,
    pub band: &'static str,
    pub latest: &'static str,
    pub readings: &'static str,
}

pub const JA: Texts = Texts {
    lang: "ja",
    service: "在宅療養連携ノート",
    sign_in: "サインイン",
    sign_out: "サインアウト",
    email: "メールアドレス",
    password: "パスワード",
    totp_code: "確認コード(6桁)",
    totp_hint: "二要素認証を使っている場合は、認証アプリの6桁のコードを入力してください。",
    sign_in_failed: "メールアドレス、パスワード、または確認コードが正しくありません。",
    locked: "失敗が続いたため、しばらくサインインできません。時間をおいてもう一度お試しください。",
    my_page: "マイページ",
    my_flags: "対応が必要な急性増悪フラグ",
    no_flags: "対応が必要なフラグはありません。",
    my_tasks: "わたしのタスク",
    no_tasks: "タスクはありません。",
    unread_notes: "未読の記録",
    no_unread: "未読の記録はありません。",
    overdue: "期限超過",
    due: "期限",
    patient: "患者",
    severity: "重症度",
    raised_at: "発生",
    reason: "理由",
    status: "状態",
    age: "年齢",
    years: "歳",
    care_level: "要介護度",
    consent: "本人同意",
    team: "ケアチーム",
    lead: "リーダー",
    flags: "急性増悪フラグ",
    acknowledge: "確認しました",
    acknowledge_note: "確認メモ(任意)",
    acknowledged: "確認済み",
    vitals: "バイタルサインの推移(直近30日)",
    vitals_none: "この期間のバイタルサインの記録はありません。",
    timeline: "経過",
    older: "さらに前の経過",
    newest: "最新の経過へ",
    not_found_title: "見つかりません",
    not_found_body: "指定されたページは見つかりません。",
    forbidden_title: "この操作はできません",
    forbidden_body: "フォームの有効期限が切れたか、この操作の権限がありません。ページを開き直してからもう一度お試しください。",
    error_title: "操作できませんでした",
    error_body: "入力を確かめて、もう一度お試しください。",
    back_to_my_page: "マイページへ戻る",
    unread_count: "未読",
    band: "NEWS2 点数帯",
    latest: "最新値",
    readings: "件の測定",
};

pub const EN: Texts = Texts {
    lang: "en",
    service: "Renkei Note",
    sign_in: "Sign in",
    sign_out: "Sign out",
    email: "E-mail address",
    password: "Password",
    totp_code: "Verification code (6 digits)",
    totp_hint: "If you use two-factor sign-in, enter the 6-digit code from your authenticator app.",
    sign_in_failed: "The e-mail address, password or verification code is not correct.",
    locked: "Too many failed attempts: signing in is paused for a while. Please try again later.",
    my_page: "My page",
    my_flags: "Deterioration flags to act on",
    no_flags: "No flags to act on.",
    my_tasks: "My tasks",
    no_tasks: "No tasks.",
    unread_notes: "Unread notes",
    no_unread: "No unread notes.",
    overdue: "Overdue",
    due: "Due",
    patient: "Patient",
    severity: "Severity",
    raised_at: "Raised",
    reason: "Reason",
    status: "Status",
    age: "Age",
    years: "",
    care_level: "Care level",
    consent: "Consent",
    team: "Care team",
    lead: "lead",
    flags: "Deterioration flags",
    acknowledge: "Acknowledge",
    acknowledge_note: "Note (optional)",
    acknowledged: "Acknowledged",
    vitals: "Vital signs (last 30 days)",
    vitals_none: "No vital signs were recorded in this period.",
    timeline: "Timeline",
    older: "Older entries",
    newest: "Back to the newest",
    not_found_title: "Not found",
    not_found_body: "The page you asked for was not found.",
    forbidden_title: "This cannot be done",
    forbidden_body: "The form has expired or you may not do this. Reload the page and try again.",
    error_title: "That did not work",
    error_body: "Check what you entered and try again.",
    back_to_my_page: "Back to my page",
    unread_count: "unread",
    band: "NEWS2 score band",
    latest: "latest",
    readings: "readings",
};

pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::Ja => &JA,
        Lang::En => &EN,
    }
}

const WEEKDAYS_JA: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];

/// A calendar day as people write it: `2026年1月30日(金)`, or `Fri 30 Jan 2026`.
pub fn date(lang: Lang, day: NaiveDate) -> String {
    match lang {
        Lang::Ja => format!(
            "{}年{}月{}日({})",
            day.year(),
            day.month(),
            day.day(),
            WEEKDAYS_JA[day.weekday().num_days_from_monday() as usize]
        ),
        Lang::En => day.format("%a %-d %b %Y").to_string(),
    }
}

/// A moment stored in UTC, as a day and time in Japan.
pub fn moment(lang: Lang, at: NaiveDateTime) -> String {
    let local = at + chrono::Duration::hours(9);
    format!("{} {}", date(lang, local.date()), local.format("%H:%M"))
}

/// A moment in Japan, short (for chart axes): `1/30 14:05`.
pub fn short_moment(at: NaiveDateTime) -> String {
    (at + chrono::Duration::hours(9)).format("%-m/%-d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_people_write_them() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 30).unwrap_or_default();
        assert_eq!(date(Lang::Ja, d), "2026年1月30日(金)");
        assert_eq!(date(Lang::En, d), "Fri 30 Jan 2026");
    }
}
