//! The console's pages: askama templates compiled into the binary (HTML-escaped throughout) and
//! the lines they show. What a line says is decided in [`super::views`].

use askama::Template;

use super::chart::ChartView;
use super::text::Texts;
use crate::error::{AppError, AppResult};

/// What every page around its content shows: who is signed in, and the sign-out form.
pub struct Frame {
    pub t: &'static Texts,
    pub user_name: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignIn {
    pub t: &'static Texts,
    pub csrf: String,
    pub next: String,
    pub email: String,
    pub message: Option<&'static str>,
}

pub struct FlagLine {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub severity: &'static str,
    pub severity_key: &'static str,
    pub status: &'static str,
    pub active: bool,
    pub raised_at: String,
    pub reason: String,
    pub acknowledge_note: String,
}

pub struct TaskLine {
    pub id: String,
    pub title: String,
    pub case_id: String,
    pub patient_id: String,
    pub due: String,
    pub overdue: bool,
    pub status: &'static str,
}

pub struct UnreadLine {
    pub patient_id: String,
    pub patient_name: String,
    pub count: i64,
    pub newest: Vec<String>,
}

/// A ward the reader coordinates, linked from マイページ.
pub struct WardLink {
    pub code: String,
    pub name: String,
}

/// A patient whose circle the reader takes part in (as the patient, family or key person).
pub struct CircleLink {
    pub patient_id: String,
    pub name: String,
    pub role: &'static str,
}

pub struct FamilyMessageLine {
    pub id: String,
    /// The reader wrote it (and may withdraw it).
    pub own: bool,
    /// Withdrawn (entered in error): why.
    pub withdrawn: Option<String>,
    pub who: String,
    pub at: String,
    pub text: String,
    pub raised_flag: bool,
}

/// A professional waiting for the patient's approval to join.
pub struct JoiningLine {
    pub invitation_id: String,
    pub name: String,
    pub profession: &'static str,
    pub organization: String,
    pub role: &'static str,
}

#[derive(Template)]
#[template(path = "family.html")]
pub struct FamilyPage {
    pub frame: Frame,
    pub id: String,
    pub name: String,
    pub messages: Vec<FamilyMessageLine>,
    /// The reader approves joinings (the patient, the key person).
    pub approves: bool,
    pub requests: Vec<JoiningLine>,
    /// The post form's `Idempotency-Key`.
    pub key: String,
}

/// The page of a participant invitation's link: the form making the account, or the way to
/// sign in and take part.
#[derive(Template)]
#[template(path = "participant_invitation.html")]
pub struct ParticipantInvitationPage {
    pub t: &'static Texts,
    pub csrf: String,
    pub token: String,
    pub about: String,
    pub has_account: bool,
    pub signed_in: bool,
    pub name: String,
    pub message: Option<String>,
}

#[derive(Template)]
#[template(path = "my_page.html")]
pub struct MyPage {
    pub frame: Frame,
    pub circles: Vec<CircleLink>,
    pub wards: Vec<WardLink>,
    pub flags: Vec<FlagLine>,
    pub tasks: Vec<TaskLine>,
    pub unread_total: i64,
    pub unread: Vec<UnreadLine>,
}

pub struct MemberLine {
    pub name: String,
    pub role: &'static str,
    pub organization: String,
    /// The organisation's number as typed, and as a `tel:` address (digits and `+` only).
    pub phone: String,
    pub tel: String,
    pub lead: bool,
}

pub struct TimelineLine {
    pub at: String,
    pub who: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "patient.html")]
pub struct PatientPage {
    pub frame: Frame,
    pub id: String,
    pub name: String,
    pub kana: String,
    pub age: i32,
    pub birth_date: String,
    pub care_level: &'static str,
    pub status: &'static str,
    pub consent: &'static str,
    pub consent_missing: bool,
    pub team: Vec<MemberLine>,
    pub flags: Vec<FlagLine>,
    pub charts: Vec<ChartView>,
    pub timeline: Vec<TimelineLine>,
    pub older: Option<String>,
    pub paged: bool,
    /// For the team's active members: the form that posts a note.
    pub note_form: Option<NoteForm>,
    /// The reader may open the family channel (`access::Need::FamilyChannel`).
    pub family_channel: bool,
}

/// The patient page's form for a new note. `key` makes a second press of the button (or a
/// resent form) post nothing more: it is the form's `Idempotency-Key`.
pub struct NoteForm {
    pub key: String,
    pub kinds: Vec<Choice>,
    pub consciousness: Vec<Choice>,
    /// Now in Japan, as a `datetime-local` value.
    pub now: String,
}

/// One option of a select.
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// One patient of a ward's caseload.
pub struct CaseloadLine {
    pub id: String,
    pub name: String,
    pub kana: String,
    pub age: i32,
    pub care_level: &'static str,
    pub status: &'static str,
    pub flags: String,
    pub flagged: bool,
    pub news2: String,
    pub last_visit: String,
    pub discharge: String,
    pub no_physician: bool,
    pub consent: &'static str,
    pub consent_missing: bool,
}

#[derive(Template)]
#[template(path = "ward.html")]
pub struct WardPage {
    pub frame: Frame,
    pub code: String,
    pub ward_name: String,
    pub has_active_flag: bool,
    pub no_home_physician: bool,
    pub open_discharge_case: bool,
    pub overdue_tasks: bool,
    pub no_visit_days: String,
    pub care_levels: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    /// The `<svg>` of the ward's counts (built from numbers and fixed words, names escaped).
    pub summary_svg: String,
    pub rows: Vec<CaseloadLine>,
    /// Links keeping the filters: the next page, the first page (when paged), the CSV download.
    pub next: Option<String>,
    pub first: Option<String>,
    pub csv: String,
}

/// One task of a discharge case, with the moves its status may make.
pub struct CaseTaskLine {
    pub id: String,
    pub title: String,
    pub due: String,
    pub overdue: bool,
    pub who: String,
    pub unassigned: bool,
    pub status: &'static str,
    pub version: i32,
    pub moves: Vec<Choice>,
}

pub struct ConferenceLine {
    pub held_at: String,
    pub place: String,
    pub attendees: String,
    pub content: String,
}

#[derive(Template)]
#[template(path = "case.html")]
pub struct CasePage {
    pub frame: Frame,
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub hospital: String,
    pub admitted_on: String,
    pub planned_discharge_on: String,
    pub discharged_on: String,
    pub department: String,
    pub status: &'static str,
    pub has_home_physician: bool,
    pub open_tasks: i64,
    pub overdue_tasks: i64,
    pub version: i32,
    /// Which moves of the case to offer (the server decides again when one is sent).
    pub can_discharge: bool,
    pub can_close: bool,
    pub can_cancel: bool,
    pub today: String,
    pub tasks: Vec<CaseTaskLine>,
    pub conferences: Vec<ConferenceLine>,
}

/// The two-factor page: its state, or (after the password) the QR code and the key to confirm.
#[derive(Template)]
#[template(path = "totp.html")]
pub struct TotpPage {
    pub frame: Frame,
    pub enabled: bool,
    pub done: bool,
    pub message: Option<String>,
    /// While enrolling: the QR code's `<svg>` (numbers and escaped fixed words) and the key.
    pub qr_svg: Option<String>,
    pub secret: String,
    /// With two-factor sign-in on: the unused recovery codes left, and codes just made (shown
    /// this once).
    pub recovery_remaining: i64,
    pub recovery_codes: Vec<String>,
    /// Whether the reader may turn two-factor sign-in off (a system administrator may not).
    pub may_turn_off: bool,
    pub turned_off: bool,
}

#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub frame: Frame,
    pub done: bool,
    pub message: Option<String>,
}

/// Asking for a link (no token), told it is on its way (`sent`), or setting the password with a
/// link's token. Before any session: the form's token is the sign-in form's kind.
#[derive(Template)]
#[template(path = "password_reset.html")]
pub struct PasswordReset {
    pub t: &'static Texts,
    pub csrf: String,
    pub token: Option<String>,
    pub sent: bool,
    pub email: String,
    pub message: Option<String>,
}

/// A care-team invitation for the signed-in invitee: what it is, and the two answers while it
/// is open. Nothing of the patient: they are not on the team yet.
#[derive(Template)]
#[template(path = "invitation.html")]
pub struct InvitationPage {
    pub frame: Frame,
    pub about: String,
    pub open: bool,
    pub token: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub t: &'static Texts,
    pub title: &'static str,
    pub body: String,
}

pub fn render(page: &impl Template) -> AppResult<String> {
    page.render().map_err(|e| AppError::internal(format!("console page: {e}")))
}
