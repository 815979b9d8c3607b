//! The access log ("who opened this record") in plain words, for the patient and their key
//! person as much as for the lead: "2026年12月7日 14:03（日本時間） 山田 花子さん（看護師、川崎訪問看護ステーション）が記録（連絡ノート）を見ました。"

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{organizations, users};
use crate::db::DbConn;
use crate::error::AppResult;
use crate::mail::templates::{format_time, profession_label};
use crate::vocab::{Locale, Profession};

/// Who acted, as the log names them.
pub struct Actor {
    pub name: String,
    pub profession: Profession,
    pub organization: Option<String>,
}

/// Who an account is, as the log names them: name, profession and organisation.
pub fn actor(conn: &mut DbConn, id: &str) -> AppResult<Option<Actor>> {
    let found: Option<(String, Profession, Option<String>)> = users::table
        .left_join(organizations::table.on(organizations::id.nullable().eq(users::organization_id)))
        .filter(users::id.eq(id))
        .select((users::name, users::profession, organizations::name.nullable()))
        .first(conn)
        .optional()?;
    Ok(found.map(|(name, profession, organization)| Actor { name, profession, organization }))
}

/// The part of the record an event touched, in each language.
fn part(resource_type: &str) -> (&'static str, &'static str) {
    match resource_type {
        "access_log" => ("閲覧記録", "the access log"),
        "allergy" => ("アレルギー", "allergies"),
        "appointment" => ("予定", "appointments"),
        "attachment" => ("添付ファイル", "an attachment"),
        "care_team" => ("ケアチーム", "the care team"),
        "care_team_invitation" => ("ケアチームへの招待", "a care-team invitation"),
        "care_team_member" => ("ケアチームのメンバー", "a care-team membership"),
        "caseload" => ("区の患者一覧", "the ward's caseload"),
        "consent" => ("情報共有への同意", "the consent to share"),
        "discharge_case" => ("退院調整", "the discharge coordination"),
        "discharge_conference" => ("退院前カンファレンス", "a discharge conference"),
        "discharge_task" => ("退院調整の作業", "a discharge task"),
        "discharge_task_comment" => ("退院調整の作業へのコメント", "a comment on a discharge task"),
        "emergency_access" => ("緊急アクセス", "emergency access"),
        "emergency_card" => ("救急情報", "the emergency card"),
        "family_message" => ("家族との連絡", "the family channel"),
        "fhir" => ("記録全体の書き出し", "an export of the whole record"),
        "flag" => ("急変の知らせ", "a deterioration flag"),
        "joining_approval" => ("チームへの参加の承認", "the approval of who joins"),
        "medication" => ("お薬", "medications"),
        "note" => ("記録（連絡ノート）", "the notes"),
        "note_read" => ("既読", "read receipts"),
        "participant" => ("ご本人・ご家族の参加", "the patient's and family's participation"),
        "patient" => ("基本情報", "the patient's details"),
        "timeline" => ("経過", "the timeline"),
        "visit_plan" => ("訪問予定", "visit plans"),
        "vitals" => ("バイタルサイン", "vital signs"),
        _ => ("記録", "the record"),
    }
}

/// What was done (FHIR AuditEvent.action codes), done and attempted.
fn deed(action: &str) -> ((&'static str, &'static str), (&'static str, &'static str)) {
    match action {
        "C" => (("登録しました", "added to"), ("登録しよう", "add to")),
        "U" => (("変更しました", "changed"), ("変更しよう", "change")),
        "D" => (("削除しました", "deleted"), ("削除しよう", "delete")),
        "E" => (("使いました", "used"), ("使おう", "use")),
        _ => (("見ました", "viewed"), ("見よう", "view")),
    }
}

fn who(actor: Option<&Actor>, locale: Locale) -> String {
    let Some(a) = actor else {
        return match locale {
            Locale::Ja => "システム".into(),
            Locale::En => "The system".into(),
        };
    };
    let kind = match (a.profession, &a.organization) {
        (Profession::Layperson, _) | (_, None) => profession_label(Profession::Layperson, locale).to_string(),
        (p, Some(o)) => match locale {
            Locale::Ja => format!("{}、{o}", profession_label(p, locale)),
            Locale::En => format!("{}, {o}", profession_label(p, locale)),
        },
    };
    match locale {
        Locale::Ja => format!("{}さん（{kind}）", a.name),
        Locale::En => format!("{} ({kind})", a.name),
    }
}

/// One event in plain words: Japanese and English.
pub fn plain(
    at: NaiveDateTime,
    actor: Option<&Actor>,
    action: &str,
    resource_type: &str,
    denied: bool,
) -> (String, String) {
    let (part_ja, part_en) = part(resource_type);
    let ((done_ja, done_en), (try_ja, try_en)) = deed(action);
    let (when_ja, when_en) = (format_time(at, Locale::Ja), format_time(at, Locale::En));
    let (who_ja, who_en) = (who(actor, Locale::Ja), who(actor, Locale::En));
    if denied {
        (
            format!("{when_ja} {who_ja}が{part_ja}を{try_ja}としましたが、許可されませんでした。"),
            format!("{when_en}: {who_en} tried to {try_en} {part_en} and was refused."),
        )
    } else {
        (format!("{when_ja} {who_ja}が{part_ja}を{done_ja}。"), format!("{when_en}: {who_en} {done_en} {part_en}."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nurses_read_and_a_refused_family_attempt_read_plainly() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_opt(5, 3, 0).unwrap();
        let nurse = Actor {
            name: "山田 花子".into(),
            profession: Profession::Nurse,
            organization: Some("川崎訪問看護ステーション".into()),
        };
        let (ja, en) = plain(at, Some(&nurse), "R", "note", false);
        assert_eq!(ja, "2026年12月7日 14:03（日本時間） 山田 花子さん（看護師、川崎訪問看護ステーション）が記録（連絡ノート）を見ました。");
        assert_eq!(en, "7 Dec 2026, 14:03 JST: 山田 花子 (nurse, 川崎訪問看護ステーション) viewed the notes.");
        let daughter = Actor { name: "川崎 由美".into(), profession: Profession::Layperson, organization: None };
        let (ja, _) = plain(at, Some(&daughter), "R", "note", true);
        assert_eq!(ja, "2026年12月7日 14:03（日本時間） 川崎 由美さん（ご本人・ご家族）が記録（連絡ノート）を見ようとしましたが、許可されませんでした。");
    }
}
