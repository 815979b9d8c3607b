//! Answering an invitation with its e-mailed token, for the API and the console alike: a
//! care-team invitation, or a participant's (taken up with a new account).
//!
//! A care-team invitation:
//! the access policy finds the invitation the caller may answer, it is settled once, and an
//! accepted one makes the membership — or, where the patient or key person takes part, waits
//! for their approval (`patients::approval`).

use super::approval;
use super::invitations::{self, Invitation, InvitationView};
use super::participants::{self, ParticipantView};
use super::team::MemberView;
use crate::access;
use crate::auth::CurrentUser;
use crate::db::DbConn;
use crate::error::AppResult;
use crate::mail::Mailer;
use crate::vocab::InvitationStatus;

/// What accepting did.
pub enum Joined {
    /// The caller is on the team.
    Member(MemberView),
    /// The patient or the key person has to approve first.
    AwaitingApproval(InvitationView),
}

/// The invitation the caller may answer, as it stands (to show before answering).
pub fn addressed_to_me(conn: &mut DbConn, me: &CurrentUser, token: &str) -> AppResult<Invitation> {
    Ok(access::invitation_response(conn, me, token)?.0)
}

/// The caller joins the team as the invitation says, at once or once approved.
pub fn accept(conn: &mut DbConn, me: &CurrentUser, mailer: &Mailer, token: &str) -> AppResult<Joined> {
    let (invitation, patient) = access::invitation_response(conn, me, token)?;
    let approvers = approval::approvers(conn, &patient)?;
    if approvers.is_empty() {
        invitations::settle(conn, me, &invitation, InvitationStatus::Accepted)?;
        let user = access::joining(conn, me, &patient, &invitation)?;
        return Ok(Joined::Member(invitations::accept(conn, me, mailer, &patient, &user, &invitation)?));
    }
    invitations::settle(conn, me, &invitation, InvitationStatus::AwaitingApproval)?;
    access::joining(conn, me, &patient, &invitation)?;
    Ok(Joined::AwaitingApproval(approval::ask(conn, me, mailer, &patient, &invitation, &approvers)?))
}

pub fn decline(conn: &mut DbConn, me: &CurrentUser, token: &str) -> AppResult<InvitationView> {
    let (invitation, _) = access::invitation_response(conn, me, token)?;
    invitations::decline(conn, me, &invitation)
}

/// The whole of taking an invitation up with a new account, for the API and the console: the
/// token is checked first (422 naming `token`), so that nobody makes the server hash passwords for
/// a link that is not one; the password follows the usual rules (422 naming `password`) and is
/// hashed outside any transaction.
pub async fn take_up_participation(
    state: &crate::state::AppState,
    token: String,
    name: String,
    password: String,
    locale: crate::vocab::Locale,
    ip: Option<String>,
) -> AppResult<(crate::users::User, ParticipantView)> {
    let presented = token.clone();
    let participant = state.db.run(move |conn| crate::access::participant_invitation(conn, &presented)).await?;
    crate::auth::password::check_policy("password", &password, &participant.email, &name)?;
    let hash = crate::auth::password::hash_bounded(password).await?;
    state
        .db
        .run(move |conn| {
            // Read again: the invitation may have been taken up or ended meanwhile.
            let participant = crate::access::participant_invitation(conn, &token)?;
            participants::register(conn, &participant, &name, locale, hash, ip)
        })
        .await
}
